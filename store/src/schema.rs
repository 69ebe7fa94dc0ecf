//! Diesel table definitions, kept by hand in step with `migrations/`.
//! `tests/it/migrations.rs` checks every column here exists in the migrated database.

diesel::table! {
    transactions (hash) {
        hash -> Text,
        signer_id -> Text,
        public_key -> Text,
        nonce -> Int8,
        block_hash -> Text,
        signed_bytes -> Bytea,
        token_contract -> Text,
        claim_ids -> Array<Int8>,
        status -> Text,
        outcome -> Nullable<Jsonb>,
        failure -> Nullable<Text>,
        included_block_height -> Nullable<Int8>,
        receipt_id -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        submitted_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        amount -> Nullable<Numeric>,
        spend_day -> Nullable<Date>,
        gas_per_action -> Nullable<Int8>,
        action_count -> Nullable<Int4>,
        gas_burnt -> Nullable<Int8>,
        transfer_claims -> Nullable<Array<Int4>>,
    }
}

diesel::table! {
    claims (id) {
        id -> Int8,
        source -> Text,
        rule -> Nullable<Text>,
        receipt_id -> Nullable<Text>,
        log_index -> Nullable<Int4>,
        event_index -> Nullable<Int4>,
        idempotency_key -> Nullable<Text>,
        request_digest -> Nullable<Text>,
        token_contract -> Text,
        receiver_id -> Text,
        amount -> Numeric,
        memo -> Nullable<Text>,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        needs_isolation -> Bool,
        split_group -> Nullable<Text>,
        trigger_block_height -> Nullable<Int8>,
        current_tx_hash -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        confirmed_at -> Nullable<Timestamptz>,
        retry_at -> Nullable<Timestamptz>,
        retry_kind -> Nullable<Text>,
        retries -> Int4,
        may_coalesce -> Bool,
        campaign_id -> Nullable<Int8>,
        row_key -> Nullable<Text>,
    }
}

diesel::table! {
    campaigns (id) {
        id -> Int8,
        kind -> Text,
        name -> Text,
        token_contract -> Text,
        created_by -> Text,
        file_digest -> Text,
        status -> Text,
        approval_required -> Bool,
        rows_total -> Int8,
        rows_invalid -> Int8,
        amount_total -> Numeric,
        approved_by -> Nullable<Text>,
        approved_at -> Nullable<Timestamptz>,
        rejected_by -> Nullable<Text>,
        rejected_at -> Nullable<Timestamptz>,
        reject_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    daily_spend (token_contract, day) {
        token_contract -> Text,
        day -> Date,
        reserved -> Numeric,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    access_keys (public_key) {
        public_key -> Text,
        account_id -> Text,
        last_nonce -> Nullable<Int8>,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    indexer_cursor (stream) {
        stream -> Text,
        block_height -> Int8,
        block_hash -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    distributor_status (owner) {
        owner -> Text,
        paused_reason -> Nullable<Text>,
        last_error -> Nullable<Text>,
        last_error_at -> Nullable<Timestamptz>,
        started_at -> Timestamptz,
        heartbeat_at -> Timestamptz,
        stopped_at -> Nullable<Timestamptz>,
        details -> Jsonb,
    }
}

diesel::joinable!(claims -> transactions (current_tx_hash));

diesel::table! {
    webhook_endpoints (name) {
        name -> Text,
        url -> Text,
        events -> Array<Text>,
        enabled -> Bool,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamptz>,
        delivered_total -> Int8,
        last_delivered_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Int8,
        endpoint -> Text,
        event_id -> Uuid,
        event_type -> Text,
        claim_id -> Nullable<Int8>,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        last_http_status -> Nullable<Int4>,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
        dead_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    key_transactions (hash) {
        hash -> Text,
        signer_id -> Text,
        public_key -> Text,
        nonce -> Int8,
        block_height -> Int8,
        block_hash -> Text,
        receipt_id -> Nullable<Text>,
        failure -> Nullable<Text>,
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    incidents (id) {
        id -> Int8,
        kind -> Text,
        subject -> Text,
        token_contract -> Nullable<Text>,
        tx_hash -> Nullable<Text>,
        receipt_id -> Nullable<Text>,
        claim_id -> Nullable<Int8>,
        public_key -> Nullable<Text>,
        block_height -> Nullable<Int8>,
        details -> Jsonb,
        detected_at -> Timestamptz,
        cleared_at -> Nullable<Timestamptz>,
        cleared_by -> Nullable<Text>,
    }
}
