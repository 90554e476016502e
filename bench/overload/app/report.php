<?php
// The heavy feature: a sales report that scans the orders and holds its
// connection much longer than a page. Turned off while CoupeCircuit says the
// server is overloaded (the cheap summary is shown instead).
require __DIR__ . '/app.php';

page_start();
$user = require_login();
session_write_close();
if (overloaded()) {
    echo "<!doctype html><title>Rapport</title><p>Rapport détaillé indisponible pendant la charge.</p>\n";
    exit;
}
$db = db();
hold($db, 0.2);
$rows = query($db, 'SELECT i.category, count(*) AS orders, sum(o.quantity * i.price) AS total
                    FROM orders o JOIN items i ON i.id = o.item_id GROUP BY i.category ORDER BY total DESC');
echo "<!doctype html><title>Rapport</title><table>\n";
foreach ($rows as $row) {
    printf("<tr><td>%d</td><td>%d</td><td>%s</td></tr>\n", $row['category'], $row['orders'], $row['total']);
}
echo "</table>\n";
