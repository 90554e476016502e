<?php
// A page of the logged-in area: a catalogue page read from PostgreSQL,
// holding the connection about 50 ms like a real page with a few queries.
require __DIR__ . '/app.php';

page_start();
$user = require_login();
session_write_close();
$category = max(0, min(49, (int) ($_GET['c'] ?? 0)));
$db = db();
hold($db, 0.05);
$items = query($db, 'SELECT id, title, price FROM items WHERE category = $1 ORDER BY price DESC LIMIT 20', [$category]);
echo "<!doctype html><title>Catalogue</title><p>Bonjour ", htmlspecialchars($user), "</p><ul>\n";
foreach ($items as $item) {
    printf("<li>%d %s %s</li>\n", $item['id'], htmlspecialchars($item['title']), $item['price']);
}
echo "</ul>\n";
