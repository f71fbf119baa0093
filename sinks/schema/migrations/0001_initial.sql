-- 0001_initial: written by `python -m sinks.ddl --write-migration` from schemas/avro; review it.

CREATE TABLE IF NOT EXISTS `raw_webhooks`
(
    `event_id` Nullable(String) COMMENT 'not a provider field: normalized event_id, null when the body is not JSON',
    `kind` LowCardinality(String) COMMENT 'not a provider field: webhook kind from the URL segment {kind}',
    `tenant` LowCardinality(String) COMMENT 'not a provider field: tenant of the authenticated URL',
    `received_at` DateTime64(3, 'UTC') COMMENT 'not a provider field: ingest clock, UTC',
    `remote_addr` Nullable(String) COMMENT 'HTTP request: client address',
    `content_type` Nullable(String) COMMENT 'HTTP request: Content-Type header',
    `headers` Map(String, String) COMMENT 'HTTP request: headers, secrets removed',
    `body` String COMMENT 'HTTP request: body bytes as received'
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(`received_at`)
ORDER BY (`tenant`, `kind`, `received_at`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'raw archive of every accepted webhook request';

CREATE TABLE IF NOT EXISTS `dead_letters`
(
    `kind` LowCardinality(String) COMMENT 'not a provider field: webhook kind from the URL segment {kind}',
    `tenant` LowCardinality(String) COMMENT 'not a provider field: tenant of the authenticated URL',
    `received_at` DateTime64(3, 'UTC') COMMENT 'not a provider field: ingest clock, UTC',
    `stage` LowCardinality(String) COMMENT 'pipeline stage that failed: ingest | streams | sink',
    `reason` String COMMENT 'human-readable failure reason',
    `error_type` LowCardinality(String) COMMENT 'exception class name of the failure',
    `headers` Map(String, String) COMMENT 'HTTP request or Kafka headers, secrets removed',
    `body` String COMMENT 'the provider body or source record bytes as received',
    `source_topic` Nullable(String) COMMENT 'Kafka topic of the failed record (streams, sink)',
    `source_partition` Nullable(Int32) COMMENT 'Kafka partition of the failed record (streams, sink)',
    `source_offset` Nullable(Int64) COMMENT 'Kafka offset of the failed record (streams, sink)'
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(`received_at`)
ORDER BY (`stage`, `tenant`, `received_at`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'a webhook or record that could not be processed, kept for replay';

CREATE TABLE IF NOT EXISTS `call_leg_events`
(
    `event_id` String COMMENT 'not a provider field: first 32 hex chars of sha256(tenant, kind, canonical JSON body)',
    `kind` LowCardinality(String) COMMENT 'not a provider field: webhook kind from the URL segment {kind}',
    `tenant` LowCardinality(String) COMMENT 'not a provider field: tenant of the authenticated URL',
    `received_at` DateTime64(3, 'UTC') COMMENT 'not a provider field: ingest clock, UTC',
    `extra_json` String COMMENT 'top-level provider fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `call_id` Int64 COMMENT 'provider: id',
    `client_id` Nullable(Int64) COMMENT 'provider: cliente_id',
    `record_audio` Nullable(Bool) COMMENT 'provider: gravar_audio',
    `tags` Nullable(String) COMMENT 'provider: tags',
    `created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_criacao as a UTC instant (naive text read as UTC)',
    `created_raw` Nullable(String) COMMENT 'provider: data_criacao, original text',
    `origin_number` Nullable(String) COMMENT 'provider: numero',
    `origin_type` LowCardinality(Nullable(String)) COMMENT 'provider: tipo (ramal | fixo | movel, others accepted)',
    `origin_status` LowCardinality(Nullable(String)) COMMENT 'provider: status, as sent',
    `origin_active` Nullable(Bool) COMMENT 'provider: ativo',
    `origin_created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_criacao as a UTC instant (naive text read as America/Sao_Paulo)',
    `origin_created_raw` Nullable(String) COMMENT 'provider: data_criacao, original text',
    `origin_started_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_inicio as a UTC instant (naive text read as America/Sao_Paulo)',
    `origin_started_raw` Nullable(String) COMMENT 'provider: data_inicio, original text',
    `origin_answered_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_atendimento as a UTC instant (naive text read as America/Sao_Paulo)',
    `origin_answered_raw` Nullable(String) COMMENT 'provider: data_atendimento, original text',
    `origin_total_seconds` Nullable(Int64) COMMENT 'provider: duracao_segundos',
    `origin_talk_seconds` Nullable(Int64) COMMENT 'provider: duracao_falada_segundos',
    `origin_extra_json` Nullable(String) COMMENT 'leg fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `destination_number` Nullable(String) COMMENT 'provider: numero',
    `destination_type` LowCardinality(Nullable(String)) COMMENT 'provider: tipo (ramal | fixo | movel, others accepted)',
    `destination_status` LowCardinality(Nullable(String)) COMMENT 'provider: status, as sent',
    `destination_active` Nullable(Bool) COMMENT 'provider: ativo',
    `destination_created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_criacao as a UTC instant (naive text read as America/Sao_Paulo)',
    `destination_created_raw` Nullable(String) COMMENT 'provider: data_criacao, original text',
    `destination_started_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_inicio as a UTC instant (naive text read as America/Sao_Paulo)',
    `destination_started_raw` Nullable(String) COMMENT 'provider: data_inicio, original text',
    `destination_answered_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_atendimento as a UTC instant (naive text read as America/Sao_Paulo)',
    `destination_answered_raw` Nullable(String) COMMENT 'provider: data_atendimento, original text',
    `destination_total_seconds` Nullable(Int64) COMMENT 'provider: duracao_segundos',
    `destination_talk_seconds` Nullable(Int64) COMMENT 'provider: duracao_falada_segundos',
    `destination_extra_json` Nullable(String) COMMENT 'leg fields this contract does not know, as a sorted JSON object (\'{}\' when none)'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(`received_at`)
ORDER BY (`tenant`, `event_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'kind chamada_evento: real-time event of a 2-leg call';

CREATE VIEW IF NOT EXISTS `v_call_leg_events` AS SELECT * FROM `call_leg_events` FINAL;

CREATE TABLE IF NOT EXISTS `call_snapshots`
(
    `event_id` String COMMENT 'not a provider field: first 32 hex chars of sha256(tenant, kind, canonical JSON body)',
    `kind` LowCardinality(String) COMMENT 'not a provider field: webhook kind from the URL segment {kind}',
    `tenant` LowCardinality(String) COMMENT 'not a provider field: tenant of the authenticated URL',
    `received_at` DateTime64(3, 'UTC') COMMENT 'not a provider field: ingest clock, UTC',
    `extra_json` String COMMENT 'top-level provider fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `call_id` Int64 COMMENT 'provider: id',
    `client_id` Nullable(Int64) COMMENT 'provider: cliente_id',
    `account_id` Nullable(Int64) COMMENT 'provider: conta_id',
    `origin_extension_id` Nullable(Int64) COMMENT 'provider: ramal_id_origem',
    `created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_criacao as a UTC instant (naive text read as America/Sao_Paulo)',
    `created_raw` Nullable(String) COMMENT 'provider: data_criacao, original text',
    `active` Nullable(Bool) COMMENT 'provider: ativa',
    `recording_url` Nullable(String) COMMENT 'provider: url_gravacao',
    `tags` Nullable(String) COMMENT 'provider: tags',
    `overall_status` LowCardinality(Nullable(String)) COMMENT 'provider: status_geral, as sent',
    `origin_number` Nullable(String) COMMENT 'provider: numero (numero_origem / numero_destino in the flat DID shape)',
    `origin_type` LowCardinality(Nullable(String)) COMMENT 'provider: tipo (ramal | fixo | movel, others accepted)',
    `origin_status` LowCardinality(Nullable(String)) COMMENT 'provider: status, as sent',
    `origin_started_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_inicio as a UTC instant (naive text read as America/Sao_Paulo)',
    `origin_started_raw` Nullable(String) COMMENT 'provider: data_inicio, original text',
    `origin_total_seconds` Nullable(Int64) COMMENT 'provider: duracao_segundos (or parsed duracao when missing)',
    `origin_total_hms` Nullable(String) COMMENT 'provider: duracao, original HH:MM:SS text',
    `origin_billed_seconds` Nullable(Int64) COMMENT 'provider: duracao_cobrada_segundos (or parsed duracao_cobrada when missing)',
    `origin_billed_hms` Nullable(String) COMMENT 'provider: duracao_cobrada, original HH:MM:SS text',
    `origin_talk_seconds` Nullable(Int64) COMMENT 'provider: duracao_falada_segundos (or parsed duracao_falada when missing)',
    `origin_talk_hms` Nullable(String) COMMENT 'provider: duracao_falada, original HH:MM:SS text',
    `origin_price` Nullable(Decimal(18, 6)) COMMENT 'provider: preco (money, decimal(18,6))',
    `origin_disconnect_code` Nullable(Int32) COMMENT 'provider: motivo_desconexao, leading Q.850 cause number (\'16. normal\' -> 16)',
    `origin_disconnect_text` LowCardinality(Nullable(String)) COMMENT 'provider: motivo_desconexao, text after the number (\'normal\', \'indefinido\')',
    `origin_disconnect_raw` Nullable(String) COMMENT 'provider: motivo_desconexao, original text',
    `origin_caller_id` Nullable(String) COMMENT 'provider: bina_origem (origin leg) / bina_destino (destination leg)',
    `origin_substatus` Nullable(String) COMMENT 'provider: substatus',
    `origin_extra_json` Nullable(String) COMMENT 'leg fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `destination_number` Nullable(String) COMMENT 'provider: numero (numero_origem / numero_destino in the flat DID shape)',
    `destination_type` LowCardinality(Nullable(String)) COMMENT 'provider: tipo (ramal | fixo | movel, others accepted)',
    `destination_status` LowCardinality(Nullable(String)) COMMENT 'provider: status, as sent',
    `destination_started_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_inicio as a UTC instant (naive text read as America/Sao_Paulo)',
    `destination_started_raw` Nullable(String) COMMENT 'provider: data_inicio, original text',
    `destination_total_seconds` Nullable(Int64) COMMENT 'provider: duracao_segundos (or parsed duracao when missing)',
    `destination_total_hms` Nullable(String) COMMENT 'provider: duracao, original HH:MM:SS text',
    `destination_billed_seconds` Nullable(Int64) COMMENT 'provider: duracao_cobrada_segundos (or parsed duracao_cobrada when missing)',
    `destination_billed_hms` Nullable(String) COMMENT 'provider: duracao_cobrada, original HH:MM:SS text',
    `destination_talk_seconds` Nullable(Int64) COMMENT 'provider: duracao_falada_segundos (or parsed duracao_falada when missing)',
    `destination_talk_hms` Nullable(String) COMMENT 'provider: duracao_falada, original HH:MM:SS text',
    `destination_price` Nullable(Decimal(18, 6)) COMMENT 'provider: preco (money, decimal(18,6))',
    `destination_disconnect_code` Nullable(Int32) COMMENT 'provider: motivo_desconexao, leading Q.850 cause number (\'16. normal\' -> 16)',
    `destination_disconnect_text` LowCardinality(Nullable(String)) COMMENT 'provider: motivo_desconexao, text after the number (\'normal\', \'indefinido\')',
    `destination_disconnect_raw` Nullable(String) COMMENT 'provider: motivo_desconexao, original text',
    `destination_caller_id` Nullable(String) COMMENT 'provider: bina_origem (origin leg) / bina_destino (destination leg)',
    `destination_substatus` Nullable(String) COMMENT 'provider: substatus',
    `destination_extra_json` Nullable(String) COMMENT 'leg fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `partial_recordings_json` String COMMENT 'provider: gravacoes_parciais, as JSON text (\'[]\' when absent)',
    `extension_id` Nullable(Int64) COMMENT 'provider: ramal_id (flat DID shape)',
    `extension` Nullable(String) COMMENT 'provider: ramal (flat DID shape), as text'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(`received_at`)
ORDER BY (`tenant`, `event_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'kinds status_tempo_real, chamada_fim, chamada_did_fim: call object snapshot';

CREATE VIEW IF NOT EXISTS `v_call_snapshots` AS SELECT * FROM `call_snapshots` FINAL;

CREATE TABLE IF NOT EXISTS `single_leg_call_ends`
(
    `event_id` String COMMENT 'not a provider field: first 32 hex chars of sha256(tenant, kind, canonical JSON body)',
    `kind` LowCardinality(String) COMMENT 'not a provider field: webhook kind from the URL segment {kind}',
    `tenant` LowCardinality(String) COMMENT 'not a provider field: tenant of the authenticated URL',
    `received_at` DateTime64(3, 'UTC') COMMENT 'not a provider field: ingest clock, UTC',
    `extra_json` String COMMENT 'top-level provider fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `call_id` Int64 COMMENT 'provider: id',
    `destination_number` Nullable(String) COMMENT 'provider: numero_destino',
    `created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_criacao as a UTC instant (naive text read as America/Sao_Paulo)',
    `created_raw` Nullable(String) COMMENT 'provider: data_criacao, original text',
    `started_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_inicio as a UTC instant (naive text read as America/Sao_Paulo)',
    `started_raw` Nullable(String) COMMENT 'provider: data_inicio, original text',
    `type` LowCardinality(Nullable(String)) COMMENT 'provider: tipo, as sent',
    `status` LowCardinality(Nullable(String)) COMMENT 'provider: status, as sent',
    `total_seconds` Nullable(Int64) COMMENT 'provider: duracao_segundos (or parsed duracao when missing)',
    `total_hms` Nullable(String) COMMENT 'provider: duracao, original HH:MM:SS text',
    `billed_seconds` Nullable(Int64) COMMENT 'provider: duracao_cobrada_segundos (or parsed duracao_cobrada when missing)',
    `billed_hms` Nullable(String) COMMENT 'provider: duracao_cobrada, original HH:MM:SS text',
    `talk_seconds` Nullable(Int64) COMMENT 'provider: duracao_falada_segundos (or parsed duracao_falada when missing)',
    `talk_hms` Nullable(String) COMMENT 'provider: duracao_falada, original HH:MM:SS text',
    `price` Nullable(Decimal(18, 6)) COMMENT 'provider: preco (money, decimal(18,6))',
    `expects_reply` Nullable(Bool) COMMENT 'provider: resposta_usuario',
    `reply` Nullable(String) COMMENT 'provider: resposta (DTMF)',
    `disconnect_code` Nullable(Int32) COMMENT 'provider: motivo_desconexao, leading Q.850 cause number (\'16. normal\' -> 16)',
    `disconnect_text` LowCardinality(Nullable(String)) COMMENT 'provider: motivo_desconexao, text after the number (\'normal\', \'indefinido\')',
    `disconnect_raw` Nullable(String) COMMENT 'provider: motivo_desconexao, original text',
    `recording_url` Nullable(String) COMMENT 'provider: url_gravacao',
    `audio_url` Nullable(String) COMMENT 'provider: url_audio (audio_fim)',
    `message` Nullable(String) COMMENT 'provider: mensagem (tts_fim)',
    `tags` Nullable(String) COMMENT 'provider: tags'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(`received_at`)
ORDER BY (`tenant`, `event_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'kinds tts_fim, audio_fim, composto_fim: end of a single-leg call';

CREATE VIEW IF NOT EXISTS `v_single_leg_call_ends` AS SELECT * FROM `single_leg_call_ends` FINAL;

CREATE TABLE IF NOT EXISTS `extension_call_events`
(
    `event_id` String COMMENT 'not a provider field: first 32 hex chars of sha256(tenant, kind, canonical JSON body)',
    `kind` LowCardinality(String) COMMENT 'not a provider field: webhook kind from the URL segment {kind}',
    `tenant` LowCardinality(String) COMMENT 'not a provider field: tenant of the authenticated URL',
    `received_at` DateTime64(3, 'UTC') COMMENT 'not a provider field: ingest clock, UTC',
    `extra_json` String COMMENT 'top-level provider fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `call_id` Int64 COMMENT 'provider: id',
    `created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_criacao as a UTC instant (naive text read as America/Sao_Paulo)',
    `created_raw` Nullable(String) COMMENT 'provider: data_criacao, original text',
    `answered_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_atendimento as a UTC instant (naive text read as America/Sao_Paulo)',
    `answered_raw` Nullable(String) COMMENT 'provider: data_atendimento, original text',
    `type` LowCardinality(Nullable(String)) COMMENT 'provider: tipo, as sent',
    `active` Nullable(Bool) COMMENT 'provider: ativo',
    `extension` Nullable(String) COMMENT 'provider: ramal (number or text), as text',
    `extension_json` Nullable(String) COMMENT 'provider: ramal when it is an object (old DID payloads), as JSON text',
    `status` LowCardinality(Nullable(String)) COMMENT 'provider: status, as sent',
    `total_seconds` Nullable(Int64) COMMENT 'provider: duracao_segundos',
    `talk_seconds` Nullable(Int64) COMMENT 'provider: duracao_falada_segundos',
    `disconnect_code` Nullable(Int32) COMMENT 'provider: motivo_desconexao, leading Q.850 cause number (\'16. normal\' -> 16)',
    `disconnect_text` LowCardinality(Nullable(String)) COMMENT 'provider: motivo_desconexao, text after the number (\'normal\', \'indefinido\')',
    `disconnect_raw` Nullable(String) COMMENT 'provider: motivo_desconexao, original text'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(`received_at`)
ORDER BY (`tenant`, `event_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'kinds ramal_evento, did_evento: real-time event of an extension / DID call';

CREATE VIEW IF NOT EXISTS `v_extension_call_events` AS SELECT * FROM `extension_call_events` FINAL;

CREATE TABLE IF NOT EXISTS `sms_status_events`
(
    `event_id` String COMMENT 'not a provider field: first 32 hex chars of sha256(tenant, kind, canonical JSON body)',
    `kind` LowCardinality(String) COMMENT 'not a provider field: webhook kind from the URL segment {kind}',
    `tenant` LowCardinality(String) COMMENT 'not a provider field: tenant of the authenticated URL',
    `received_at` DateTime64(3, 'UTC') COMMENT 'not a provider field: ingest clock, UTC',
    `extra_json` String COMMENT 'top-level provider fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `sms_id` Int64 COMMENT 'provider: id',
    `destination_number` Nullable(String) COMMENT 'provider: numero_destino',
    `created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_criacao as a UTC instant (naive text read as America/Sao_Paulo)',
    `created_raw` Nullable(String) COMMENT 'provider: data_criacao, original text',
    `message` Nullable(String) COMMENT 'provider: mensagem',
    `price` Nullable(Decimal(18, 6)) COMMENT 'provider: preco (money, decimal(18,6))',
    `status` LowCardinality(Nullable(String)) COMMENT 'provider: status_envio, as sent',
    `status_changed_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_status as a UTC instant (naive text read as America/Sao_Paulo)',
    `status_changed_raw` Nullable(String) COMMENT 'provider: data_status, original text',
    `expects_reply` Nullable(Bool) COMMENT 'provider: resposta_usuario',
    `replies_json` String COMMENT 'provider: respostas, as JSON text (\'[]\' when absent)'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(`received_at`)
ORDER BY (`tenant`, `event_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'kind envio_sms: SMS delivery status';

CREATE VIEW IF NOT EXISTS `v_sms_status_events` AS SELECT * FROM `sms_status_events` FINAL;

CREATE TABLE IF NOT EXISTS `sms_replies`
(
    `event_id` String COMMENT 'not a provider field: first 32 hex chars of sha256(tenant, kind, canonical JSON body)',
    `kind` LowCardinality(String) COMMENT 'not a provider field: webhook kind from the URL segment {kind}',
    `tenant` LowCardinality(String) COMMENT 'not a provider field: tenant of the authenticated URL',
    `received_at` DateTime64(3, 'UTC') COMMENT 'not a provider field: ingest clock, UTC',
    `extra_json` String COMMENT 'top-level provider fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `reply_id` Int64 COMMENT 'provider: id',
    `sms_id` Int64 COMMENT 'provider: sms_id',
    `reply` Nullable(String) COMMENT 'provider: resposta',
    `replied_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_resposta as a UTC instant (naive text read as America/Sao_Paulo)',
    `replied_raw` Nullable(String) COMMENT 'provider: data_resposta, original text'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(`received_at`)
ORDER BY (`tenant`, `event_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'kind resposta_sms: a user\'s reply to an SMS';

CREATE VIEW IF NOT EXISTS `v_sms_replies` AS SELECT * FROM `sms_replies` FINAL;

CREATE TABLE IF NOT EXISTS `conference_events`
(
    `event_id` String COMMENT 'not a provider field: first 32 hex chars of sha256(tenant, kind, canonical JSON body)',
    `kind` LowCardinality(String) COMMENT 'not a provider field: webhook kind from the URL segment {kind}',
    `tenant` LowCardinality(String) COMMENT 'not a provider field: tenant of the authenticated URL',
    `received_at` DateTime64(3, 'UTC') COMMENT 'not a provider field: ingest clock, UTC',
    `extra_json` String COMMENT 'top-level provider fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `conference_id` Int64 COMMENT 'provider: conferencia_id',
    `call_id` Nullable(Int64) COMMENT 'provider: chamada_id',
    `client_id` Nullable(Int64) COMMENT 'provider: cliente_id',
    `number` Nullable(String) COMMENT 'provider: numero',
    `event` LowCardinality(Nullable(String)) COMMENT 'provider: evento_conferencia, as sent (\'Entrou\', \'Saiu\', ...)',
    `record_audio` Nullable(Bool) COMMENT 'provider: gravar_audio',
    `created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_criacao as a UTC instant (naive text read as UTC)',
    `created_raw` Nullable(String) COMMENT 'provider: data_criacao, original text'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(`received_at`)
ORDER BY (`tenant`, `event_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'kind conferencia_evento: someone joined or left a conference';

CREATE VIEW IF NOT EXISTS `v_conference_events` AS SELECT * FROM `conference_events` FINAL;

CREATE TABLE IF NOT EXISTS `voicemail_events`
(
    `event_id` String COMMENT 'not a provider field: first 32 hex chars of sha256(tenant, kind, canonical JSON body)',
    `kind` LowCardinality(String) COMMENT 'not a provider field: webhook kind from the URL segment {kind}',
    `tenant` LowCardinality(String) COMMENT 'not a provider field: tenant of the authenticated URL',
    `received_at` DateTime64(3, 'UTC') COMMENT 'not a provider field: ingest clock, UTC',
    `extra_json` String COMMENT 'top-level provider fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `voicemail_id` Int64 COMMENT 'provider: id',
    `extension_id` Nullable(Int64) COMMENT 'provider: ramal_id',
    `extension` Nullable(String) COMMENT 'provider: ramal, as text',
    `phone_number` Nullable(String) COMMENT 'provider: numero_telefone',
    `message_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_mensagem as a UTC instant (naive text read as America/Sao_Paulo)',
    `message_raw` Nullable(String) COMMENT 'provider: data_mensagem, original text',
    `duration_seconds` Nullable(Int64) COMMENT 'provider: duracao_segundos',
    `recording_url` Nullable(String) COMMENT 'provider: url_gravacao'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(`received_at`)
ORDER BY (`tenant`, `event_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'kind voicemail: a new voicemail message';

CREATE VIEW IF NOT EXISTS `v_voicemail_events` AS SELECT * FROM `voicemail_events` FINAL;

CREATE TABLE IF NOT EXISTS `balance_alerts`
(
    `event_id` String COMMENT 'not a provider field: first 32 hex chars of sha256(tenant, kind, canonical JSON body)',
    `kind` LowCardinality(String) COMMENT 'not a provider field: webhook kind from the URL segment {kind}',
    `tenant` LowCardinality(String) COMMENT 'not a provider field: tenant of the authenticated URL',
    `received_at` DateTime64(3, 'UTC') COMMENT 'not a provider field: ingest clock, UTC',
    `extra_json` String COMMENT 'top-level provider fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `balance` Decimal(18, 6) COMMENT 'provider: saldo (sent as a string, decimal(18,6))'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(`received_at`)
ORDER BY (`tenant`, `event_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'kind aviso_saldo: account balance fell below the alert threshold';

CREATE VIEW IF NOT EXISTS `v_balance_alerts` AS SELECT * FROM `balance_alerts` FINAL;

CREATE TABLE IF NOT EXISTS `number_validation_events`
(
    `event_id` String COMMENT 'not a provider field: first 32 hex chars of sha256(tenant, kind, canonical JSON body)',
    `kind` LowCardinality(String) COMMENT 'not a provider field: webhook kind from the URL segment {kind}',
    `tenant` LowCardinality(String) COMMENT 'not a provider field: tenant of the authenticated URL',
    `received_at` DateTime64(3, 'UTC') COMMENT 'not a provider field: ingest clock, UTC',
    `extra_json` String COMMENT 'top-level provider fields this contract does not know, as a sorted JSON object (\'{}\' when none)',
    `validation_id` Int64 COMMENT 'provider: id',
    `destination_number` Nullable(String) COMMENT 'provider: numero_destino',
    `created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'provider: data_criacao as a UTC instant (naive text read as America/Sao_Paulo)',
    `created_raw` Nullable(String) COMMENT 'provider: data_criacao, original text',
    `price` Nullable(Decimal(18, 6)) COMMENT 'provider: preco (money, decimal(18,6))',
    `valid` Nullable(Bool) COMMENT 'provider: valido',
    `finished` Nullable(Bool) COMMENT 'provider: finalizado'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(`received_at`)
ORDER BY (`tenant`, `event_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'kind valida_numero: result of a number validation';

CREATE VIEW IF NOT EXISTS `v_number_validation_events` AS SELECT * FROM `number_validation_events` FINAL;

CREATE TABLE IF NOT EXISTS `calls`
(
    `call_id` Int64 COMMENT 'provider call id',
    `tenant` LowCardinality(String) COMMENT 'tenant the webhooks were received for',
    `version` Int64 COMMENT 'record version, monotonic per key; the sink keeps max(version). = number of distinct events merged (event_count); the same set of events gives the same version.',
    `client_id` Nullable(Int64) COMMENT 'cliente_id',
    `account_id` Nullable(Int64) COMMENT 'conta_id',
    `origin_extension_id` Nullable(Int64) COMMENT 'ramal_id_origem',
    `tags` Nullable(String) COMMENT 'tags as sent',
    `recording_url` Nullable(String) COMMENT 'url_gravacao',
    `record_audio` Nullable(Bool) COMMENT 'gravar_audio',
    `overall_status` LowCardinality(Nullable(String)) COMMENT 'status_geral (criada, curso, finalizada)',
    `created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'data_criacao of the call object (snapshots)',
    `origin_number` Nullable(String) COMMENT 'numero: phone number or extension',
    `origin_type` LowCardinality(Nullable(String)) COMMENT 'tipo: movel, fixo or ramal',
    `origin_status` LowCardinality(Nullable(String)) COMMENT 'latest status (end webhook wins; nulls never overwrite)',
    `origin_active` Nullable(Bool) COMMENT 'ativo of the latest real-time event',
    `origin_answered` Bool COMMENT 'the leg was observed answered (status atendida or data_atendimento)',
    `origin_transitions` String COMMENT 'each status seen with its earliest time, sorted by time',
    `origin_started_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'earliest data_inicio',
    `origin_ring_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'earliest time the leg was seen ringing (chamando)',
    `origin_answer_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'earliest answer time (data_atendimento, or start + total - talk from a snapshot)',
    `origin_end_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'latest start + total_seconds observed',
    `origin_total_seconds` Nullable(Int64) COMMENT 'duracao_segundos (latest; end webhook wins)',
    `origin_talk_seconds` Nullable(Int64) COMMENT 'duracao_falada_segundos (latest; end webhook wins)',
    `origin_billed_seconds` Nullable(Int64) COMMENT 'provider duracao_cobrada_segundos, from the end webhook only',
    `origin_price` Nullable(Decimal(18, 6)) COMMENT 'provider preco for this leg, from the end webhook only',
    `origin_disconnect_code` Nullable(Int32) COMMENT 'Q.850 cause from motivo_desconexao (null when not numeric)',
    `origin_disconnect_text` LowCardinality(Nullable(String)) COMMENT 'cause text (normal, ocupado, indefinido, ...)',
    `origin_disconnect_raw` Nullable(String) COMMENT 'motivo_desconexao as sent',
    `origin_caller_id` Nullable(String) COMMENT 'bina_origem / bina_destino',
    `origin_substatus` Nullable(String) COMMENT 'provider substatus (e.g. maquina_origem)',
    `origin_rated_billed_seconds` Nullable(Int64) COMMENT 'our billed seconds from the rating plan (null: not rated, e.g. provisional or no tariff)',
    `origin_rated_cost` Nullable(Decimal(18, 6)) COMMENT 'our cost from the rating plan (null: not rated)',
    `origin_billed_seconds_mismatch` Nullable(Bool) COMMENT 'billed_seconds != rated_billed_seconds (null when either is unknown)',
    `origin_price_mismatch` Nullable(Bool) COMMENT 'price != rated_cost (null when either is unknown)',
    `destination_number` Nullable(String) COMMENT 'numero: phone number or extension',
    `destination_type` LowCardinality(Nullable(String)) COMMENT 'tipo: movel, fixo or ramal',
    `destination_status` LowCardinality(Nullable(String)) COMMENT 'latest status (end webhook wins; nulls never overwrite)',
    `destination_active` Nullable(Bool) COMMENT 'ativo of the latest real-time event',
    `destination_answered` Bool COMMENT 'the leg was observed answered (status atendida or data_atendimento)',
    `destination_transitions` String COMMENT 'each status seen with its earliest time, sorted by time',
    `destination_started_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'earliest data_inicio',
    `destination_ring_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'earliest time the leg was seen ringing (chamando)',
    `destination_answer_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'earliest answer time (data_atendimento, or start + total - talk from a snapshot)',
    `destination_end_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'latest start + total_seconds observed',
    `destination_total_seconds` Nullable(Int64) COMMENT 'duracao_segundos (latest; end webhook wins)',
    `destination_talk_seconds` Nullable(Int64) COMMENT 'duracao_falada_segundos (latest; end webhook wins)',
    `destination_billed_seconds` Nullable(Int64) COMMENT 'provider duracao_cobrada_segundos, from the end webhook only',
    `destination_price` Nullable(Decimal(18, 6)) COMMENT 'provider preco for this leg, from the end webhook only',
    `destination_disconnect_code` Nullable(Int32) COMMENT 'Q.850 cause from motivo_desconexao (null when not numeric)',
    `destination_disconnect_text` LowCardinality(Nullable(String)) COMMENT 'cause text (normal, ocupado, indefinido, ...)',
    `destination_disconnect_raw` Nullable(String) COMMENT 'motivo_desconexao as sent',
    `destination_caller_id` Nullable(String) COMMENT 'bina_origem / bina_destino',
    `destination_substatus` Nullable(String) COMMENT 'provider substatus (e.g. maquina_origem)',
    `destination_rated_billed_seconds` Nullable(Int64) COMMENT 'our billed seconds from the rating plan (null: not rated, e.g. provisional or no tariff)',
    `destination_rated_cost` Nullable(Decimal(18, 6)) COMMENT 'our cost from the rating plan (null: not rated)',
    `destination_billed_seconds_mismatch` Nullable(Bool) COMMENT 'billed_seconds != rated_billed_seconds (null when either is unknown)',
    `destination_price_mismatch` Nullable(Bool) COMMENT 'price != rated_cost (null when either is unknown)',
    `answered` Bool COMMENT 'the destination leg was answered',
    `final_status` Nullable(String) COMMENT 'status of the outcome leg',
    `outcome_leg` Nullable(String) COMMENT 'origin when B was never dialled (still preparando/absent), else destination',
    `disconnect_code` Nullable(Int32) COMMENT 'Q.850 cause of the outcome leg',
    `disconnect_text` LowCardinality(Nullable(String)) COMMENT 'cause text of the outcome leg',
    `post_dial_delay_ms` Nullable(Int64) COMMENT 'destination ring_at - origin answer_at (B is dialled when A answers); null if unknown or negative',
    `start_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'earliest leg start/ring/answer time, else created_at',
    `end_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'latest leg end_at',
    `talk_seconds` Nullable(Int64) COMMENT 'talk seconds of the destination leg (the conversation)',
    `end_seen` Bool COMMENT 'the chamada_fim webhook was merged',
    `provisional` Bool COMMENT 'published without the end webhook after the inactivity timeout; no provider billing',
    `event_count` Int64 COMMENT 'distinct events merged',
    `late_event_count` Int64 COMMENT 'events merged after a record with end_seen had been published (arrival-dependent)',
    `provider_price_total` Nullable(Decimal(18, 6)) COMMENT 'sum of the legs\' provider prices (null before the end webhook)',
    `rated_cost_total` Nullable(Decimal(18, 6)) COMMENT 'sum of the legs\' rated costs (null when a leg could not be rated)',
    `rated_billed_seconds_total` Nullable(Int64) COMMENT 'sum of the legs\' rated billed seconds',
    `rating_plan_id` Nullable(String) COMMENT 'rating plan used (null: not rated)'
)
ENGINE = ReplacingMergeTree(`version`)
PARTITION BY toYYYYMM(ifNull(`created_at`, toDateTime64(0, 3, 'UTC')))
ORDER BY (`tenant`, `call_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'a two-leg API call correlated from chamada_evento, status_tempo_real and chamada_fim; key call_id';

CREATE VIEW IF NOT EXISTS `v_calls` AS SELECT * FROM `calls` FINAL;

CREATE TABLE IF NOT EXISTS `single_leg_calls`
(
    `call_id` Int64 COMMENT 'provider call id',
    `tenant` LowCardinality(String) COMMENT 'tenant the webhooks were received for',
    `version` Int64 COMMENT 'record version, monotonic per key; the sink keeps max(version). = number of distinct end events for the call id.',
    `source_kind` String COMMENT 'webhook kind of the winning end event',
    `client_id` Nullable(Int64) COMMENT 'cliente_id (DID)',
    `account_id` Nullable(Int64) COMMENT 'conta_id (DID)',
    `origin_number` Nullable(String) COMMENT 'calling number (DID origem / numero_origem)',
    `number` Nullable(String) COMMENT 'numero_destino / destino.numero',
    `type` LowCardinality(Nullable(String)) COMMENT 'tipo: movel, fixo or ramal',
    `status` LowCardinality(Nullable(String)) COMMENT 'final status',
    `answered` Bool COMMENT 'status is atendida',
    `created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'data_criacao',
    `started_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'data_inicio',
    `answer_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'started_at + total - talk when answered',
    `end_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'started_at + total_seconds',
    `total_seconds` Nullable(Int64) COMMENT 'duracao_segundos',
    `talk_seconds` Nullable(Int64) COMMENT 'duracao_falada_segundos',
    `billed_seconds` Nullable(Int64) COMMENT 'provider duracao_cobrada_segundos',
    `price` Nullable(Decimal(18, 6)) COMMENT 'provider preco',
    `disconnect_code` Nullable(Int32) COMMENT 'Q.850 cause from motivo_desconexao (null when not numeric)',
    `disconnect_text` LowCardinality(Nullable(String)) COMMENT 'cause text (normal, ocupado, indefinido, ...)',
    `disconnect_raw` Nullable(String) COMMENT 'motivo_desconexao as sent',
    `recording_url` Nullable(String) COMMENT 'url_gravacao',
    `audio_url` Nullable(String) COMMENT 'url_audio (audio_fim)',
    `message` Nullable(String) COMMENT 'mensagem (tts_fim)',
    `expects_reply` Nullable(Bool) COMMENT 'resposta_usuario',
    `reply` Nullable(String) COMMENT 'resposta (DTMF)',
    `tags` Nullable(String) COMMENT 'tags as sent',
    `extension_id` Nullable(Int64) COMMENT 'ramal_id (flat DID shape)',
    `extension` Nullable(String) COMMENT 'ramal (flat DID shape)',
    `rated_billed_seconds` Nullable(Int64) COMMENT 'our billed seconds from the rating plan (null: not rated, e.g. provisional or no tariff)',
    `rated_cost` Nullable(Decimal(18, 6)) COMMENT 'our cost from the rating plan (null: not rated)',
    `billed_seconds_mismatch` Nullable(Bool) COMMENT 'billed_seconds != rated_billed_seconds (null when either is unknown)',
    `price_mismatch` Nullable(Bool) COMMENT 'price != rated_cost (null when either is unknown)',
    `rating_plan_id` Nullable(String) COMMENT 'rating plan used'
)
ENGINE = ReplacingMergeTree(`version`)
PARTITION BY toYYYYMM(ifNull(`created_at`, toDateTime64(0, 3, 'UTC')))
ORDER BY (`tenant`, `call_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'single-leg call (tts_fim, audio_fim, composto_fim, chamada_did_fim); key call_id';

CREATE VIEW IF NOT EXISTS `v_single_leg_calls` AS SELECT * FROM `single_leg_calls` FINAL;

CREATE TABLE IF NOT EXISTS `sms`
(
    `sms_id` Int64 COMMENT 'provider SMS id',
    `tenant` LowCardinality(String) COMMENT 'tenant the webhooks were received for',
    `version` Int64 COMMENT 'record version, monotonic per key; the sink keeps max(version). = number of distinct status and reply events.',
    `destination_number` Nullable(String) COMMENT 'numero_destino',
    `message` Nullable(String) COMMENT 'mensagem',
    `created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'data_criacao',
    `price` Nullable(Decimal(18, 6)) COMMENT 'provider preco',
    `status` LowCardinality(Nullable(String)) COMMENT 'status with the latest data_status (ties: delivery progress, then event id)',
    `status_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'data_status of that status',
    `status_history` String COMMENT 'each status with its earliest time, sorted',
    `expects_reply` Nullable(Bool) COMMENT 'resposta_usuario',
    `replies` String COMMENT 'replies by reply id',
    `delivered` Bool COMMENT 'status is entregue',
    `failed` Bool COMMENT 'status is erro or bloqueado',
    `event_count` Int64 COMMENT 'distinct events merged',
    `rated_cost` Nullable(Decimal(18, 6)) COMMENT 'our per-message cost (0 when failed, null while pending)',
    `price_mismatch` Nullable(Bool) COMMENT 'price != rated_cost (null when either is unknown)',
    `rating_plan_id` Nullable(String) COMMENT 'rating plan used'
)
ENGINE = ReplacingMergeTree(`version`)
PARTITION BY toYYYYMM(ifNull(`created_at`, toDateTime64(0, 3, 'UTC')))
ORDER BY (`tenant`, `sms_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'an SMS with its status history and replies; key sms_id';

CREATE VIEW IF NOT EXISTS `v_sms` AS SELECT * FROM `sms` FINAL;

CREATE TABLE IF NOT EXISTS `conference_sessions`
(
    `conference_id` Int64 COMMENT 'conferencia_id',
    `tenant` LowCardinality(String) COMMENT 'tenant the webhooks were received for',
    `participant` String COMMENT 'call:<chamada_id>, or number:<numero> when there is no call id',
    `version` Int64 COMMENT 'record version, monotonic per key; the sink keeps max(version). = number of distinct events of the participant.',
    `call_id` Nullable(Int64) COMMENT 'chamada_id',
    `number` Nullable(String) COMMENT 'numero',
    `client_id` Nullable(Int64) COMMENT 'cliente_id',
    `record_audio` Nullable(Bool) COMMENT 'gravar_audio',
    `joined_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'first Entrou time',
    `left_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'last Saiu time when not before the last Entrou (null: still in)',
    `duration_seconds` Nullable(Int64) COMMENT 'left_at - joined_at',
    `join_count` Int64 COMMENT 'Entrou events',
    `leave_count` Int64 COMMENT 'Saiu events',
    `other_event_count` Int64 COMMENT 'events with another evento_conferencia value'
)
ENGINE = ReplacingMergeTree(`version`)
PARTITION BY toYYYYMM(ifNull(`joined_at`, toDateTime64(0, 3, 'UTC')))
ORDER BY (`tenant`, `conference_id`, `participant`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'one participant\'s presence in a conference; key (conference_id, participant)';

CREATE VIEW IF NOT EXISTS `v_conference_sessions` AS SELECT * FROM `conference_sessions` FINAL;

CREATE TABLE IF NOT EXISTS `extension_calls`
(
    `call_id` Int64 COMMENT 'provider call id',
    `tenant` LowCardinality(String) COMMENT 'tenant the webhooks were received for',
    `version` Int64 COMMENT 'record version, monotonic per key; the sink keeps max(version). = number of distinct events for the call id.',
    `kind` LowCardinality(Nullable(String)) COMMENT 'ramal_evento or did_evento (latest)',
    `type` LowCardinality(Nullable(String)) COMMENT 'tipo',
    `extension` Nullable(String) COMMENT 'ramal',
    `extension_json` Nullable(String) COMMENT 'ramal object of old DID payloads, JSON',
    `status` LowCardinality(Nullable(String)) COMMENT 'latest status',
    `active` Nullable(Bool) COMMENT 'ativo (latest)',
    `answered` Bool COMMENT 'the call was observed answered',
    `created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'data_criacao',
    `answer_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'earliest data_atendimento',
    `end_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'created_at + total_seconds once inactive',
    `total_seconds` Nullable(Int64) COMMENT 'duracao_segundos (latest)',
    `talk_seconds` Nullable(Int64) COMMENT 'duracao_falada_segundos (latest)',
    `disconnect_code` Nullable(Int32) COMMENT 'Q.850 cause from motivo_desconexao (null when not numeric)',
    `disconnect_text` LowCardinality(Nullable(String)) COMMENT 'cause text (normal, ocupado, indefinido, ...)',
    `disconnect_raw` Nullable(String) COMMENT 'motivo_desconexao as sent',
    `transitions` String COMMENT 'each status with its earliest time',
    `event_count` Int64 COMMENT 'distinct events merged'
)
ENGINE = ReplacingMergeTree(`version`)
PARTITION BY toYYYYMM(ifNull(`created_at`, toDateTime64(0, 3, 'UTC')))
ORDER BY (`tenant`, `call_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'latest state of an extension (ramal_evento) or DID (did_evento) call; key call_id';

CREATE VIEW IF NOT EXISTS `v_extension_calls` AS SELECT * FROM `extension_calls` FINAL;

CREATE TABLE IF NOT EXISTS `voicemails`
(
    `voicemail_id` Int64 COMMENT 'provider id',
    `tenant` LowCardinality(String) COMMENT 'tenant the webhooks were received for',
    `version` Int64 COMMENT 'record version, monotonic per key; the sink keeps max(version). = number of distinct events for the id.',
    `extension_id` Nullable(Int64) COMMENT 'ramal_id',
    `extension` Nullable(String) COMMENT 'ramal',
    `phone_number` Nullable(String) COMMENT 'numero_telefone',
    `message_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'data_mensagem',
    `duration_seconds` Nullable(Int64) COMMENT 'duracao_segundos',
    `recording_url` Nullable(String) COMMENT 'url_gravacao'
)
ENGINE = ReplacingMergeTree(`version`)
PARTITION BY toYYYYMM(ifNull(`message_at`, toDateTime64(0, 3, 'UTC')))
ORDER BY (`tenant`, `voicemail_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'a new voicemail; key voicemail_id';

CREATE VIEW IF NOT EXISTS `v_voicemails` AS SELECT * FROM `voicemails` FINAL;

CREATE TABLE IF NOT EXISTS `number_validations`
(
    `validation_id` Int64 COMMENT 'provider id',
    `tenant` LowCardinality(String) COMMENT 'tenant the webhooks were received for',
    `version` Int64 COMMENT 'record version, monotonic per key; the sink keeps max(version). = number of distinct events for the id (a finished result wins over an unfinished one).',
    `destination_number` Nullable(String) COMMENT 'numero_destino',
    `created_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'data_criacao',
    `price` Nullable(Decimal(18, 6)) COMMENT 'provider preco',
    `valid` Nullable(Bool) COMMENT 'valido',
    `finished` Nullable(Bool) COMMENT 'finalizado'
)
ENGINE = ReplacingMergeTree(`version`)
PARTITION BY toYYYYMM(ifNull(`created_at`, toDateTime64(0, 3, 'UTC')))
ORDER BY (`tenant`, `validation_id`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'a number validation result; key validation_id';

CREATE VIEW IF NOT EXISTS `v_number_validations` AS SELECT * FROM `number_validations` FINAL;

CREATE TABLE IF NOT EXISTS `balance_status`
(
    `tenant` LowCardinality(String) COMMENT 'tenant the webhooks were received for',
    `version` Int64 COMMENT 'record version, monotonic per key; the sink keeps max(version). = number of state changes (alerts and spend updates).',
    `last_alert_balance` Nullable(Decimal(18, 6)) COMMENT 'saldo of the last alert',
    `last_alert_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'ingest time of the last alert (the webhook has no timestamp)',
    `alert_count` Int64 COMMENT 'distinct alerts seen',
    `spend_since_alert` Decimal(18, 6) COMMENT 'rated cost of calls/SMS that ended after the last alert (since the start when none)',
    `spend_items` Int64 COMMENT 'calls/SMS in spend_since_alert',
    `updated_at` DateTime64(3, 'UTC') COMMENT 'processing time of this version'
)
ENGINE = ReplacingMergeTree(`version`)
PARTITION BY toYYYYMM(`updated_at`)
ORDER BY (`tenant`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'last low-balance alert and rated spend since; key tenant';

CREATE VIEW IF NOT EXISTS `v_balance_status` AS SELECT * FROM `balance_status` FINAL;

CREATE TABLE IF NOT EXISTS `metric_windows`
(
    `tenant` LowCardinality(String) COMMENT 'tenant the webhooks were received for',
    `window_start` DateTime64(3, 'UTC') COMMENT 'window start, aligned to UTC',
    `window_end` DateTime64(3, 'UTC') COMMENT 'window end (exclusive)',
    `window_size` String COMMENT '1m or 1h',
    `dimension` String COMMENT 'tenant, client or tipo (destination tipo; sms for SMS)',
    `dimension_value` String COMMENT 'value of the dimension (unknown when missing)',
    `calls` Int64 COMMENT 'calls started in the window (two-leg and single-leg)',
    `answered` Int64 COMMENT 'answered calls',
    `network_failures` Int64 COMMENT 'calls failed for network reasons (Q.850 set in streams/causes.py)',
    `talk_seconds` Int64 COMMENT 'talk seconds of answered calls',
    `pdd_sum_ms` Int64 COMMENT 'sum of post-dial delays',
    `pdd_count` Int64 COMMENT 'calls with a post-dial delay',
    `billed_seconds` Int64 COMMENT 'rated billed seconds',
    `sms_sent` Int64 COMMENT 'SMS created in the window',
    `sms_delivered` Int64 COMMENT 'of those, delivered',
    `sms_failed` Int64 COMMENT 'of those, failed or blocked',
    `cost` Decimal(18, 6) COMMENT 'rated cost of the calls',
    `provider_cost` Decimal(18, 6) COMMENT 'provider price of the calls',
    `sms_cost` Decimal(18, 6) COMMENT 'rated cost of the SMS',
    `asr` Nullable(Float64) COMMENT 'answered / calls',
    `ner` Nullable(Float64) COMMENT '(calls - network_failures) / calls',
    `acd_seconds` Nullable(Float64) COMMENT 'talk_seconds / answered',
    `avg_pdd_ms` Nullable(Float64) COMMENT 'pdd_sum_ms / pdd_count',
    `billed_minutes` Float64 COMMENT 'billed_seconds / 60',
    `peak_concurrent_calls` Int64 COMMENT 'max overlap of the calls\' [start, end) intervals within the window',
    `disconnect_causes` Map(String, Int64) COMMENT 'calls by Q.850 code (else cause text, else unknown)',
    `version` Int64 COMMENT 'record version, monotonic per key; the sink keeps max(version). = per-window change counter.',
    `updated_at` Nullable(DateTime64(3, 'UTC')) COMMENT 'processing time of this version'
)
ENGINE = ReplacingMergeTree(`version`)
PARTITION BY toYYYYMM(`window_start`)
ORDER BY (`tenant`, `window_size`, `dimension`, `dimension_value`, `window_start`)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'tumbling-window metrics; key (tenant, window_size, window_start, dimension, dimension_value)';

CREATE VIEW IF NOT EXISTS `v_metric_windows` AS SELECT * FROM `metric_windows` FINAL;
