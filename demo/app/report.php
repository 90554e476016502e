<?php
// A heavy feature that turns itself off when the server is not "ok".
header('Content-Type: text/plain; charset=utf-8');
if (($_SERVER['COUPECIRCUIT_ETAT'] ?? 'inconnu') !== 'ok') {
    exit("Rapport détaillé indisponible pendant la charge ; version résumée :\nsessions actives: "
        . ($_SERVER['SESSIONS_ACTIVES'] ?? '?') . "\n");
}
echo "Rapport détaillé : tout est calculé.\n";
