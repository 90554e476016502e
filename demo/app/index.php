<?php
// The values mod_coupecircuit puts in $_SERVER, read with safe defaults: a
// missing variable (module absent, helper stopped) never breaks the page.
session_start();
$etat     = $_SERVER['COUPECIRCUIT_ETAT'] ?? 'inconnu';
$load     = isset($_SERVER['LOAD_AVG']) ? (float) $_SERVER['LOAD_AVG'] : null;
$sessions = isset($_SERVER['SESSIONS_ACTIVES']) ? (int) $_SERVER['SESSIONS_ACTIVES'] : null;
$coupure  = ($_SERVER['COUPURE_CHARGE_SERVEUR'] ?? '0') === '1';
$user     = $_SESSION['vzn_demo']['storage'] ?? null;
header('Content-Type: text/plain; charset=utf-8');
printf("etat: %s\nload: %s\nsessions actives: %s\ncoupure: %s\nseuils: sessions %s, load %s\nvous: %s\n",
    $etat, $load ?? '?', $sessions ?? '?', $coupure ? 'oui' : 'non',
    $_SERVER['SEUIL_SESSIONS_ACTIVES'] ?? '-', $_SERVER['SEUIL_LOAD_AVG'] ?? '-',
    $user !== null ? "connecté ($user)" : 'anonyme');
