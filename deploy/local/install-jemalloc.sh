#!/bin/sh
# jemalloc for the streams workers (runtime/malloc.py says why), from the system's packages: installed where this
# runs as root with apt-get (CI, a fresh machine, the image); elsewhere the workers go on with glibc's allocator.
if /sbin/ldconfig -p 2>/dev/null | grep -q 'libjemalloc\.so\.2 '; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing jemalloc (libjemalloc2) for the streams workers ..."
    apt-get install -y -qq --no-install-recommends libjemalloc2 >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends libjemalloc2 >/dev/null 2>&1; } \
        && exit 0
fi
echo "[setup] jemalloc is not installed (libjemalloc2 needs root and apt-get): the streams workers use glibc's allocator"
