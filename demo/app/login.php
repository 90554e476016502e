<?php
// Graceful degradation: new logins are refused while the server is
// overloaded or cut; users already logged in keep working.
session_start();
$etat = $_SERVER['COUPECIRCUIT_ETAT'] ?? 'inconnu';
header('Content-Type: text/plain; charset=utf-8');
if (!isset($_SESSION['vzn_demo']) && ($etat === 'surcharge' || $etat === 'coupure')) {
    http_response_code(503);
    header('Retry-After: 120');
    exit("Le service est très sollicité : les nouvelles connexions sont suspendues, réessayez dans quelques minutes.\n");
}
$_SESSION['Default'] = ['initialized' => true];
$_SESSION['vzn_demo'] = ['storage' => $_GET['user'] ?? 'demo'];
echo "connecté\n";
