-- Issue 9: what the pool must remember to route and restore numbers exactly.
-- Keep in step with ../sqlite/0005_number_routing.sql.

-- 'unparseable' when the provider lists a number that is not E.164 (a Vapi BYO
-- number, a Retell import with validation off): kept, never claimed or routed,
-- reported by validation. NULL otherwise.
ALTER TABLE phone_numbers ADD COLUMN note TEXT;
-- JSON: Twilio's routing of the number besides voice_url and the trunk sid
-- (voice_method, voice_application_sid, status_callback, status_callback_method).
ALTER TABLE phone_numbers ADD COLUMN twilio_voice TEXT;
-- JSON: the Twilio routing a migration replaced (voice_url, voice_method,
-- voice_application_sid, trunk_sid, status_callback, status_callback_method), so
-- a rollback restores it exactly; NULL on entries written before it existed.
ALTER TABLE route_migration_entries ADD COLUMN previous_twilio TEXT;
