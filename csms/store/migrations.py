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

# A random version-4 UUID in SQL, for id tags written without one (`put_id_tag`, older rows).
_UUID4_SQL = ("lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||"
              " substr(lower(hex(randomblob(2))), 2) || '-' ||"
              " substr('89ab', 1 + abs(random()) % 4, 1) || substr(lower(hex(randomblob(2))), 2)"
              " || '-' || lower(hex(randomblob(6)))")

MIGRATIONS.append(
    # 8: the catalog of the HTTP side (seed 002): id tags gain a UUID, priority and grouping;
    # vehicles; configurations by level (delivery presets); OCPP settings (secret hashed).
    # Tags that existed before keep priority NULL: they override no connector's priority.
    f"""
    ALTER TABLE id_tags ADD COLUMN uuid TEXT;
    ALTER TABLE id_tags ADD COLUMN priority INTEGER;
    ALTER TABLE id_tags ADD COLUMN tag_group TEXT;
    ALTER TABLE id_tags ADD COLUMN vehicle_id TEXT;
    ALTER TABLE id_tags ADD COLUMN list_version REAL;
    ALTER TABLE id_tags ADD COLUMN custom_group TEXT;
    ALTER TABLE id_tags ADD COLUMN created_at TEXT;
    ALTER TABLE id_tags ADD COLUMN updated_at TEXT;
    UPDATE id_tags SET uuid = {_UUID4_SQL} WHERE uuid IS NULL;
    CREATE UNIQUE INDEX id_tags_uuid ON id_tags (uuid);
    CREATE INDEX id_tags_vehicle ON id_tags (vehicle_id);
    CREATE TRIGGER id_tags_named AFTER INSERT ON id_tags WHEN NEW.uuid IS NULL BEGIN
        UPDATE id_tags SET uuid = {_UUID4_SQL} WHERE rowid = NEW.rowid;
    END;
    CREATE TABLE vehicles (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        vin TEXT,
        customer_vehicle_id TEXT,
        departure_time TEXT,
        battery_capacity_kwh REAL,
        location TEXT,
        max_charging_power_kw REAL,
        state_of_charge REAL NOT NULL DEFAULT 0,
        target_state_of_charge REAL NOT NULL DEFAULT 100,
        vehicle_group TEXT,
        inside_depot TEXT,
        make TEXT,
        model TEXT,
        year INTEGER,
        license_plate TEXT,
        active INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX vehicles_updated ON vehicles (updated_at);
    CREATE TABLE configurations (
        id TEXT PRIMARY KEY,
        level TEXT NOT NULL,
        target TEXT NOT NULL,
        doc TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (level, target)
    );
    CREATE TABLE ocpp_settings (
        scope TEXT PRIMARY KEY,
        secret_hash TEXT,
        feature TEXT NOT NULL,
        target_cms_url TEXT,
        default_network_id TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """
)

MIGRATIONS.append(
    # 9: what the HTTP API adds to a session (seed 002 charging sessions): enrichment of an
    # OCPP transaction, or a whole session created through the API for a charger another CSMS
    # runs (source 'api'); indexes for the paged session, meter value and optimization views
    """
    CREATE TABLE session_details (
        session_id INTEGER PRIMARY KEY REFERENCES sessions (id),
        source TEXT NOT NULL DEFAULT 'ocpp',
        charging_rate_unit TEXT NOT NULL DEFAULT 'W',
        energy_to_charge_kwh REAL,
        departure TEXT,
        priority INTEGER,
        vehicle_id TEXT,
        max_power_kw REAL,
        payment_info TEXT,
        remote_stop INTEGER,
        start_soc REAL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX session_details_vehicle ON session_details (vehicle_id);
    CREATE INDEX sessions_connector ON sessions (cp_id, connector_id, stopped_at);
    CREATE INDEX meter_values_connector_ts ON meter_values (cp_id, connector_id, ts);
    CREATE INDEX meter_values_ts ON meter_values (ts);
    CREATE INDEX plans_site_ts ON plans (site_id, ts);
    """
)

MIGRATIONS.append(
    # 10: charge points and connectors as the HTTP API (document 002) describes them: what a
    # client set beside what OCPP reports. `uuid` is the id a client holds (it survives a
    # change of OCPP id); `origin` is 'api' (created by a client) or 'ocpp' (found when the
    # charger reported itself). Null facts mean: the config patterns decide.
    """
    CREATE TABLE inventory_charge_points (
        uuid TEXT PRIMARY KEY,
        cp_id TEXT NOT NULL UNIQUE,
        origin TEXT NOT NULL,
        custom_name TEXT,
        max_capacity REAL,
        parent_id TEXT,
        allow_all_id_tags INTEGER,
        latitude REAL,
        longitude REAL,
        location TEXT,
        model_name TEXT,
        orientation REAL,
        position TEXT,
        power_split INTEGER,
        payment_terminal_id TEXT,
        meter_type TEXT,
        serial_number TEXT,
        source TEXT,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE TABLE inventory_connectors (
        uuid TEXT PRIMARY KEY,
        cp_uuid TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        origin TEXT NOT NULL,
        name TEXT,
        current_type TEXT,
        voltage REAL,
        power_factor REAL,
        max_capacity REAL,
        max_amperage REAL,
        priority INTEGER,
        phases TEXT,
        plug_type TEXT,
        plug_power_level TEXT,
        ocpi_status TEXT,
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        UNIQUE (cp_uuid, connector_id)
    );
    CREATE INDEX sessions_open_by_cp ON sessions (cp_id, connector_id) WHERE stopped_at IS NULL;
    """
)

MIGRATIONS.append(
    # 11: the OCPP message log read through the HTTP API (filters and pages in SQL over many
    # frames), and messages relayed to chargers on an API client's behalf: durable, so that a
    # message for an offline charger waits in the store until it connects
    """
    CREATE INDEX frames_cp_ts ON frames (cp_id, ts);
    CREATE INDEX frames_action_ts ON frames (action, ts);
    CREATE INDEX frames_reply ON frames (cp_id, unique_id);
    CREATE TABLE relay_messages (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        cp_id TEXT NOT NULL,
        protocol TEXT NOT NULL,
        action TEXT NOT NULL,
        unique_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        source TEXT NOT NULL,
        url TEXT,
        send INTEGER NOT NULL,
        status TEXT NOT NULL,
        command_id INTEGER,
        reply TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX relay_queued ON relay_messages (cp_id, id) WHERE status = 'queued';
    """
)

MIGRATIONS.append(
    # 12: webhooks of sites (the secret encrypted) and their outbox. A plan of a site with a
    # webhook enqueues its delivery in the same transaction as the plan itself (the trigger),
    # so no plan is recorded without its delivery, whatever stops the process after the commit.
    """
    CREATE TABLE webhooks (
        site_id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE webhook_outbox (
        id INTEGER PRIMARY KEY,
        site_id TEXT NOT NULL,
        plan_id INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        gone TEXT,
        created_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX webhook_outbox_pending ON webhook_outbox (site_id, id) WHERE status = 'pending';
    CREATE INDEX webhook_outbox_age ON webhook_outbox (created_at);
    CREATE TRIGGER plans_webhook_outbox AFTER INSERT ON plans
    WHEN EXISTS (SELECT 1 FROM webhooks WHERE site_id = NEW.site_id)
    BEGIN
        INSERT INTO webhook_outbox (site_id, plan_id, next_attempt_at, created_at)
        VALUES (NEW.site_id, NEW.id, NEW.ts, NEW.ts);
    END;
    """
)

MIGRATIONS.append(
    # 13: what the HTTP API keeps about networks (sites and groups), capacities and DR events
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

MIGRATIONS.append(
    # 14: alerts (over-limit plans, chargers that cannot be limited), at most one open per key;
    # the webhook outbox also carries alert deliveries: plan_id 0 and the body to POST.
    """
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        key TEXT NOT NULL,
        site_id TEXT,
        node_id TEXT,
        cp_id TEXT,
        connector_id INTEGER,
        name TEXT NOT NULL,
        category TEXT NOT NULL,
        urgency TEXT NOT NULL,
        status TEXT NOT NULL,
        description TEXT NOT NULL,
        details TEXT NOT NULL,
        notes TEXT,
        start TEXT NOT NULL,
        "end" TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX alerts_open ON alerts (key) WHERE "end" IS NULL;
    CREATE INDEX alerts_start ON alerts (start);
    ALTER TABLE webhook_outbox ADD COLUMN body TEXT;
    """
)

MIGRATIONS.append(
    # 15: 2.0.1 sequence numbers per transaction. A charger that reboots mid-transaction may
    # number again from 0 (its count was lost), so events are keyed by a numbering epoch too;
    # the session keeps its last seqNo and epoch, and the GetTransactionStatus answer asked
    # for when an Ended arrived with seqNos missing.
    """
    CREATE TABLE tx_events_epochs (
        cp_id TEXT NOT NULL,
        ocpp_tx_id TEXT NOT NULL,
        epoch INTEGER NOT NULL DEFAULT 0,
        seq_no INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        trigger_reason TEXT,
        ts TEXT NOT NULL,
        PRIMARY KEY (cp_id, ocpp_tx_id, epoch, seq_no)
    );
    INSERT INTO tx_events_epochs (cp_id, ocpp_tx_id, epoch, seq_no, event_type,
                                  trigger_reason, ts)
        SELECT cp_id, ocpp_tx_id, 0, seq_no, event_type, trigger_reason, ts FROM tx_events;
    DROP TABLE tx_events;
    ALTER TABLE tx_events_epochs RENAME TO tx_events;
    ALTER TABLE sessions ADD COLUMN last_seq_no INTEGER;
    ALTER TABLE sessions ADD COLUMN seq_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN status_check TEXT;
    """
)

MIGRATIONS.append(
    # 16: reports a station sends in parts (2.0.1 NotifyCustomerInformation,
    # NotifyDisplayMessages): one row per station, kind and requestId, its parts as received;
    # at most one open (tbc) per key, so a requestId the station reuses later starts a new one.
    """
    CREATE TABLE station_reports (
        id INTEGER PRIMARY KEY,
        cp_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        request_id INTEGER NOT NULL,
        parts TEXT NOT NULL,
        complete INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX station_reports_open ON station_reports (cp_id, kind, request_id)
        WHERE complete = 0;
    CREATE INDEX station_reports_key ON station_reports (cp_id, kind, request_id);
    """
)

MIGRATIONS.append(
    # 17: what a session costs under its site's tariff (csms.tariffs): the total as exact
    # decimal text in `cost_currency`; `cost_final` once the session ended and its cost was
    # settled (what the charger was told in the Ended answer, never recomputed after).
    """
    ALTER TABLE sessions ADD COLUMN total_cost TEXT;
    ALTER TABLE sessions ADD COLUMN cost_currency TEXT;
    ALTER TABLE sessions ADD COLUMN cost_final INTEGER NOT NULL DEFAULT 0;
    """
)

MIGRATIONS.append(
    # 18: what each charger's local authorization list holds as far as we know (the version
    # last accepted and its entries, so a sync can send only the difference), and
    # reservations (ReserveNow) with the charger's answer and what became of them.
    """
    CREATE TABLE local_lists (
        cp_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        entries TEXT NOT NULL,
        out_of_date INTEGER NOT NULL DEFAULT 1,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE reservations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        cp_id TEXT NOT NULL,
        connector_id INTEGER,
        id_tag TEXT NOT NULL,
        parent_id_tag TEXT,
        expiry TEXT NOT NULL,
        status TEXT NOT NULL,
        charger_status TEXT,
        transaction_id TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX reservations_cp ON reservations (cp_id, status);
    """
)

MIGRATIONS.append(
    # 19: registration states (Accepted, Pending, Rejected). `registration` is the operator's
    # word (NULL: none given, the config decides), `boot_status` what we answered the
    # charger's last BootNotification (NULL: it never booted on this record). A charger
    # registered before this kept being Accepted; one that booted was answered Accepted.
    """
    ALTER TABLE charge_points ADD COLUMN registration TEXT;
    ALTER TABLE charge_points ADD COLUMN boot_status TEXT;
    UPDATE charge_points SET registration = 'Accepted' WHERE registered = 1;
    UPDATE charge_points SET boot_status = 'Accepted' WHERE booted_at IS NOT NULL;
    """
)

MIGRATIONS.append(
    # 20: firmware updates, firmware publications and log uploads asked of a station: one row per
    # request, its answer and the status its notifications report (matched by requestId, or
    # for 1.6 FirmwareStatusNotification / DiagnosticsStatusNotification, which carry none,
    # the charger's latest open request of that family). The device model also keeps a
    # variable's instance, so DeviceDataCtrlr ItemsPerMessage[GetVariables] and
    # ItemsPerMessage[SetVariables] no longer overwrite each other.
    """
    CREATE TABLE transfer_requests (
        id INTEGER PRIMARY KEY,
        cp_id TEXT NOT NULL,
        family TEXT NOT NULL,
        action TEXT NOT NULL,
        request_id INTEGER,
        payload TEXT NOT NULL,
        answer_status TEXT,
        status TEXT NOT NULL,
        file_name TEXT,
        history TEXT NOT NULL DEFAULT '[]',
        open INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX transfer_requests_cp ON transfer_requests (cp_id, family, id);
    CREATE TABLE variables_by_instance (
        cp_id TEXT NOT NULL,
        component TEXT NOT NULL,
        evse_id INTEGER NOT NULL DEFAULT 0,
        variable TEXT NOT NULL,
        instance TEXT NOT NULL DEFAULT '',
        attribute TEXT NOT NULL DEFAULT 'Actual',
        value TEXT,
        raw TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (cp_id, component, evse_id, variable, instance, attribute)
    );
    INSERT INTO variables_by_instance (cp_id, component, evse_id, variable, instance,
                                       attribute, value, raw, updated_at)
        SELECT cp_id, component, evse_id, variable,
               COALESCE(json_extract(raw, '$.variable.instance'), ''), attribute, value, raw,
               updated_at FROM variables;
    DROP TABLE variables;
    ALTER TABLE variables_by_instance RENAME TO variables;
    """
)

MIGRATIONS.append(
    # 21: open sessions by id tag, so an authorization can tell a tag already charging
    # elsewhere (ConcurrentTx) without reading every session.
    """
    CREATE INDEX sessions_open_by_tag ON sessions (id_tag) WHERE stopped_at IS NULL;
    """
)
