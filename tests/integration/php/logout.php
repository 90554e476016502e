<?php
// Ends the session: its file is removed from the session directory.
session_start();
$id = session_id();
$_SESSION = [];
$destroyed = session_destroy();
header('Content-Type: application/json');
header('Cache-Control: no-store');
echo json_encode(['session_id' => $id, 'destroyed' => $destroyed]), "\n";
