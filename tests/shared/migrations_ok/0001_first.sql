CREATE TABLE widget (id bigserial PRIMARY KEY, name text NOT NULL);
