-- Data of the overload application (loaded once into a fresh cluster).
CREATE TABLE users (id serial PRIMARY KEY, login text UNIQUE NOT NULL, password_md5 text NOT NULL);
CREATE TABLE items (id serial PRIMARY KEY, category int NOT NULL, title text NOT NULL, price numeric(10, 2) NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, item_id int NOT NULL REFERENCES items, quantity int NOT NULL);
INSERT INTO users (login, password_md5)
    SELECT 'user' || n, md5('secret' || n) FROM generate_series(1, 20000) AS n;
INSERT INTO items (category, title, price)
    SELECT n % 50, 'article ' || n, (n * 7919 % 10000) / 100.0 FROM generate_series(1, 20000) AS n;
INSERT INTO orders (item_id, quantity)
    SELECT 1 + (n::bigint * 104729 % 20000)::int, 1 + n % 5 FROM generate_series(1, 100000) AS n;
CREATE INDEX items_category ON items (category);
ANALYZE;
