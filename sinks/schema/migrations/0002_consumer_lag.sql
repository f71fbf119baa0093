-- 0002_consumer_lag: written by hand; the one table that is not derived from an Avro contract, because the sink
-- measures it itself (sinks/lag.py) instead of consuming it from a topic.

CREATE TABLE IF NOT EXISTS `consumer_lag`
(
    `measured_at` DateTime64(3, 'UTC') COMMENT 'when the sink measured it',
    `group_id` LowCardinality(String) COMMENT 'Kafka consumer group (the sink, the streams app)',
    `topic` LowCardinality(String) COMMENT 'Kafka topic',
    `partition` Int32 COMMENT 'Kafka partition',
    `committed` Nullable(Int64) COMMENT 'committed offset of the group, null when it never committed',
    `end_offset` Int64 COMMENT 'log end offset when measured',
    `lag` Int64 COMMENT 'messages not yet processed: end offset - committed (or - start offset)'
)
ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(`measured_at`)
ORDER BY (`group_id`, `topic`, `partition`, `measured_at`)
TTL toDateTime(`measured_at`) + INTERVAL 7 DAY
COMMENT 'consumer lag of callpipe groups, sampled by the sink every SINK_LAG_INTERVAL_S';
