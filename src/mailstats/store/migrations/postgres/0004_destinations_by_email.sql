-- A bounce that names several recipients finds each one's destination among the emailing's
-- destinations by address, whatever its case.
CREATE INDEX destinations_emailing_email ON destinations (emailing_id, lower(email));
