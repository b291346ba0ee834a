-- The `ops archive` tables (grid/v1). One file for SQLite and PostgreSQL: the types below mean
-- the same in both (SQLite stores BOOLEAN as 0/1 and BYTEA as a blob). Every statement is
-- idempotent, so every archiver runs it at start. Readers (ops report, ops alerts) may rely on
-- these columns; new columns are only ever added, never renamed.

-- Every evt/* message and every ack, once per (dev, id): a republish or a broker redelivery
-- carries the same id and is dropped by the primary key.
CREATE TABLE IF NOT EXISTS events (
    dev         TEXT    NOT NULL,  -- device id, from the topic (grid/v1/D/...)
    id          TEXT    NOT NULL,  -- envelope id (UUIDv7)
    kind        TEXT    NOT NULL,  -- checkin incident patrol alarm detection media notice ack
    seq         BIGINT,            -- envelope seq (NULL when not an integer)
    boot        TEXT,
    ts          BIGINT,            -- device wall clock at creation, epoch ms
    time_ok     BOOLEAN,
    hist        BOOLEAN,
    received_ms BIGINT  NOT NULL,  -- when the archiver took it, epoch ms
    payload     TEXT    NOT NULL,  -- the published JSON exactly (sha256 of it = the next prev)
    PRIMARY KEY (dev, id)
);
CREATE INDEX IF NOT EXISTS events_kind_ts ON events (kind, ts);
CREATE INDEX IF NOT EXISTS events_dev_seq ON events (dev, seq);

-- grid/v1/D/state (birth, will, shutdown), once per distinct payload.
CREATE TABLE IF NOT EXISTS states (
    dev         TEXT    NOT NULL,
    digest      TEXT    NOT NULL,  -- sha256 hex of the payload: the state's identity
    online      BOOLEAN,
    bdseq       BIGINT,
    ts          BIGINT,
    received_ms BIGINT  NOT NULL,
    payload     TEXT    NOT NULL,
    PRIMARY KEY (dev, digest)
);
CREATE INDEX IF NOT EXISTS states_dev_received ON states (dev, received_ms);

-- grid/v1/D/reported (what is applied, problems), once per distinct payload.
CREATE TABLE IF NOT EXISTS reported (
    dev         TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    config_ver  BIGINT,
    tasks_ver   BIGINT,
    ts          BIGINT,
    received_ms BIGINT  NOT NULL,
    payload     TEXT    NOT NULL,
    PRIMARY KEY (dev, digest)
);

-- Raw chunks (grid/v1/D/media/M/n) until their photo is whole; a chunk topic that arrives again
-- (re-chunked photo) replaces the earlier bytes: the last one is kept.
CREATE TABLE IF NOT EXISTS media_chunks (
    dev         TEXT    NOT NULL,
    media_id    TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    data        BYTEA   NOT NULL,
    received_ms BIGINT  NOT NULL,
    PRIMARY KEY (dev, media_id, n)
);

-- One row per photo named by a `media` event; `chunks` from that event is authoritative.
-- status: waiting (chunks missing), ok (file written, sha256 checked), sha256_mismatch (all
-- chunks there but the bytes do not match; retried when a chunk arrives again).
CREATE TABLE IF NOT EXISTS media (
    dev         TEXT    NOT NULL,
    media_id    TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,  -- the media event's id (events.id)
    sha256      TEXT    NOT NULL,
    bytes       BIGINT  NOT NULL,
    chunks      INTEGER NOT NULL,
    mime        TEXT,
    ref_kind    TEXT,              -- the event that names the photo: kind and id
    ref_id      TEXT,
    status      TEXT    NOT NULL,
    path        TEXT,              -- relative to the media directory: DEV/MEDIA_ID.jpg
    done_ms     BIGINT,
    PRIMARY KEY (dev, media_id)
);
CREATE INDEX IF NOT EXISTS media_ref ON media (ref_kind, ref_id);

-- Messages on archived topics that are not what grid/v1 says (bad JSON, no id...): kept so
-- nothing vanishes silently, once per (topic, payload).
CREATE TABLE IF NOT EXISTS rejects (
    digest      TEXT    NOT NULL PRIMARY KEY,  -- sha256 hex of topic, NUL, payload
    topic       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    received_ms BIGINT  NOT NULL,
    payload     BYTEA   NOT NULL
);
