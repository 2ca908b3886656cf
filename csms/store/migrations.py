"""Versioned schema migrations, applied in order at start; `PRAGMA user_version` counts them."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the CSMS core
    """
    CREATE TABLE charge_points (
        cp_id TEXT PRIMARY KEY,
        protocol TEXT,
        vendor TEXT,
        model TEXT,
        serial TEXT,
        firmware TEXT,
        password_hash TEXT,
        registered INTEGER NOT NULL DEFAULT 0,
        online INTEGER NOT NULL DEFAULT 0,
        last_seen TEXT,
        booted_at TEXT,
        capabilities TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE connectors (
        cp_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        evse_connector_id INTEGER,
        status TEXT,
        error_code TEXT,
        info TEXT,
        updated_at TEXT,
        PRIMARY KEY (cp_id, connector_id)
    );
    CREATE TABLE status_history (
        id INTEGER PRIMARY KEY,
        cp_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT,
        info TEXT,
        ts TEXT NOT NULL
    );
    CREATE INDEX status_history_cp ON status_history (cp_id, ts);
    CREATE TABLE id_tags (
        id_tag TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        expiry TEXT,
        parent_id_tag TEXT
    );
    -- AUTOINCREMENT: transaction ids are never reused, even after the newest row is deleted.
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        cp_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        evse_connector_id INTEGER,
        ocpp_tx_id TEXT,
        id_tag TEXT,
        started_at TEXT NOT NULL,
        stopped_at TEXT,
        meter_start_wh REAL,
        meter_stop_wh REAL,
        first_energy_wh REAL,
        last_energy_wh REAL,
        stop_reason TEXT,
        charging_state TEXT,
        offline INTEGER NOT NULL DEFAULT 0,
        UNIQUE (cp_id, ocpp_tx_id)
    );
    CREATE UNIQUE INDEX sessions_start_dedup
        ON sessions (cp_id, connector_id, coalesce(id_tag, ''), started_at);
    CREATE INDEX sessions_active ON sessions (stopped_at);
    CREATE TABLE tx_events (
        cp_id TEXT NOT NULL,
        ocpp_tx_id TEXT NOT NULL,
        seq_no INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        trigger_reason TEXT,
        ts TEXT NOT NULL,
        PRIMARY KEY (cp_id, ocpp_tx_id, seq_no)
    );
    CREATE TABLE meter_values (
        id INTEGER PRIMARY KEY,
        cp_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        session_id INTEGER,
        ts TEXT NOT NULL,
        measurand TEXT NOT NULL,
        phase TEXT,
        unit TEXT,
        value REAL NOT NULL,
        context TEXT,
        location TEXT
    );
    CREATE INDEX meter_values_session ON meter_values (session_id);
    CREATE INDEX meter_values_cp_ts ON meter_values (cp_id, ts);
    CREATE TABLE commands (
        id INTEGER PRIMARY KEY,
        cp_id TEXT NOT NULL,
        action TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL,
        response TEXT,
        created_at TEXT NOT NULL,
        answered_at TEXT
    );
    CREATE INDEX commands_cp ON commands (cp_id, id);
    CREATE TABLE frames (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        cp_id TEXT NOT NULL,
        direction TEXT NOT NULL,
        message_type INTEGER,
        unique_id TEXT,
        action TEXT,
        text TEXT NOT NULL
    );
    CREATE INDEX frames_ts ON frames (ts);
    CREATE TABLE variables (
        cp_id TEXT NOT NULL,
        component TEXT NOT NULL,
        evse_id INTEGER NOT NULL DEFAULT 0,
        variable TEXT NOT NULL,
        attribute TEXT NOT NULL DEFAULT 'Actual',
        value TEXT,
        raw TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (cp_id, component, evse_id, variable, attribute)
    );
    CREATE TABLE ev_charging_needs (
        id INTEGER PRIMARY KEY,
        cp_id TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        requested_energy_transfer TEXT NOT NULL,
        departure TEXT,
        energy_amount_wh REAL,
        ev_max_power_w REAL,
        ev_max_current_a REAL,
        ev_min_current_a REAL,
        raw TEXT NOT NULL,
        received_at TEXT NOT NULL
    );
    CREATE TABLE charger_events (
        id INTEGER PRIMARY KEY,
        cp_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        ts TEXT NOT NULL
    );
    """,
]

MIGRATIONS.append(
    # 2: load management: every plan, and limits set from outside with an end time
    """
    CREATE TABLE plans (
        id INTEGER PRIMARY KEY,
        site_id TEXT NOT NULL,
        ts TEXT NOT NULL,
        trigger TEXT NOT NULL,
        limit_kw REAL,
        limit_a REAL,
        limit_source TEXT,
        solver_status TEXT NOT NULL,
        solve_time_s REAL NOT NULL,
        inputs TEXT NOT NULL,
        result TEXT NOT NULL
    );
    CREATE INDEX plans_site ON plans (site_id, id);
    CREATE TABLE external_limits (
        id INTEGER PRIMARY KEY,
        node_id TEXT NOT NULL,
        power_kw REAL,
        current_a REAL,
        start TEXT,
        end TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """
)

MIGRATIONS.append(
    # 3: a sample a charger resends (its acknowledgement was lost) is stored once
    """
    DELETE FROM meter_values WHERE id NOT IN (
        SELECT min(id) FROM meter_values GROUP BY cp_id, connector_id, coalesce(session_id, -1),
            ts, measurand, coalesce(phase, ''), coalesce(location, ''), coalesce(context, ''),
            value
    );
    CREATE UNIQUE INDEX meter_values_once ON meter_values (cp_id, connector_id,
        coalesce(session_id, -1), ts, measurand, coalesce(phase, ''), coalesce(location, ''),
        coalesce(context, ''), value);
    """
)

MIGRATIONS.append(
    # 4: sites (with their groups, charger patterns and limits) live in the store
    """
    CREATE TABLE sites (
        id TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """
)

MIGRATIONS.append(
    # 5: what each charger model accepts (purpose, unit, connector, numberPhases), learned from
    # its answers to our profiles, so a restart does not have to learn it again
    """
    CREATE TABLE charger_models (
        model_key TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """
)

MIGRATIONS.append(
    # 6: a 1.6 StartTransaction retry is recognised by a lookup inside the write (one writer),
    # so the start need not be unique: two 2.0.1 transactions (different ids) may share a
    # connector, token and start time (a charger whose clock is not set sends one time for all)
    """
    DROP INDEX sessions_start_dedup;
    CREATE INDEX sessions_start_lookup ON sessions (cp_id, connector_id, started_at);
    """
)

MIGRATIONS.append(
    # 7: API keys for the HTTP side: only a hash of each key is kept, never the key
    """
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        key_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    """
)

MIGRATIONS.append(
    # 8: what the HTTP API keeps about networks (sites and groups), capacities and DR events
    # beside their specs: names, echo-only fields, and when each was created and updated
    """
    CREATE TABLE network_records (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        site_id TEXT NOT NULL,
        attrs TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX network_records_site ON network_records (site_id, kind);
    """
)
