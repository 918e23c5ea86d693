-- Why a message bounced (one of mailstats.reports.REASONS), shown with `extended=true`; and
-- a bounce that names several recipients finds each one's destination among the emailing's
-- destinations by address, whatever its case.
ALTER TABLE events ADD COLUMN reason TEXT;
CREATE INDEX destinations_emailing_email ON destinations (emailing_id, lower(email));
