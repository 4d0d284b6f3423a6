-- Callback deliveries in order (sqlite): the events of one call (`ordering_key`,
-- the outbound call's id) are claimed one at a time, oldest first
-- (`created_at`, then `event_id`, a UUIDv7), so a user's endpoint hears a
-- call's status changes and its result in the order they happened. NULL: an
-- event about no call, delivered in no particular order.
-- Keep in step with ../postgres/0019_callback_order.sql.

ALTER TABLE callback_deliveries ADD COLUMN ordering_key TEXT;

CREATE INDEX callback_deliveries_in_order
    ON callback_deliveries (ordering_key, created_at, event_id)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
