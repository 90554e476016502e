<?php
// Reports the CoupeCircuit variables as PHP sees them in $_SERVER (null when
// absent). ?extra=A,B adds more names (renamed variables).
header('Content-Type: application/json');
header('Cache-Control: no-store');
$keys = ['LOAD_AVG', 'SESSIONS_ACTIVES', 'COUPURE_CHARGE_SERVEUR', 'SEUIL_SESSIONS_ACTIVES', 'SEUIL_LOAD_AVG',
         'COUPECIRCUIT_ETAT', 'COUPECIRCUIT_AGE'];
if (isset($_GET['extra']) && is_string($_GET['extra']) && $_GET['extra'] !== '') {
    $keys = array_merge($keys, explode(',', $_GET['extra']));
}
$out = [];
foreach ($keys as $key) {
    $out[$key] = array_key_exists($key, $_SERVER) ? (string) $_SERVER[$key] : null;
}
$out['_sapi'] = PHP_SAPI;
$out['_pid'] = getmypid();
$out['_server_name'] = $_SERVER['SERVER_NAME'] ?? null;
$out['_redirect_keys'] = array_values(array_filter(array_keys($_SERVER), function ($k) {
    return strncmp($k, 'REDIRECT_', 9) === 0;
}));
echo json_encode($out), "\n";
