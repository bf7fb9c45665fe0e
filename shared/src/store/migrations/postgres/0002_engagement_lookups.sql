-- Version 2: the lookups of the events stage and of `cpo forget`.

-- An ESP event that names only the provider's message id finds our message
-- through its send record.
CREATE INDEX sends_provider_message ON sends (provider_message_id);

-- `cpo forget` finds a person's assignments by customer id.
CREATE INDEX assignments_customer ON assignments (customer_id);
