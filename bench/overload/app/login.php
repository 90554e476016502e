<?php
// GET: the login form (starts an anonymous session, as most frameworks do
// for their CSRF token). POST: checks the account in the database and marks
// the session authenticated. While CoupeCircuit says the server is overloaded
// new logins are refused with 503 and Retry-After; sessions already logged in
// are untouched.
require __DIR__ . '/app.php';

page_start();
if (logged_user() !== null) {
    echo "<!doctype html><title>Déjà connecté</title><p>Déjà connecté.</p>\n";
    exit;
}
if (overloaded()) {
    refuse_new_login();
}
if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    $_SESSION['Default'] = ['initialized' => true];
    $_SESSION['csrf'] ??= bin2hex(random_bytes(8));
    printf("<!doctype html><title>Connexion</title><form method=\"post\"><input name=\"csrf\" value=\"%s\">"
        . "<input name=\"login\"><input name=\"password\" type=\"password\"></form>\n", $_SESSION['csrf']);
    exit;
}
if (($_POST['csrf'] ?? '') !== ($_SESSION['csrf'] ?? null)) {
    http_response_code(400);
    exit("<!doctype html><title>Formulaire expiré</title><p>Formulaire expiré.</p>\n");
}
$db = db();
hold($db, 0.05);
$rows = query($db, 'SELECT id, password_md5 FROM users WHERE login = $1', [$_POST['login'] ?? '']);
if ($rows === [] || $rows[0]['password_md5'] !== md5($_POST['password'] ?? '')) {
    http_response_code(403);
    exit("<!doctype html><title>Refusé</title><p>Identifiants incorrects.</p>\n");
}
session_regenerate_id(true);
$_SESSION['__ZF'] = ['vzn_app' => ['ENT' => time()]];
$_SESSION['vzn_app'] = ['storage' => $_POST['login'], 'id' => (int) $rows[0]['id']];
echo "<!doctype html><title>Bienvenue</title><p>Connecté.</p>\n";
