<?php
require __DIR__ . '/app.php';

page_start();
$_SESSION = [];
session_destroy();
echo "<!doctype html><title>Au revoir</title><p>Déconnecté.</p>\n";
