ALTER TABLE widget ADD COLUMN colour text;
