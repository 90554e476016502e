<?php
// A visitor who is not logged in: the session only holds the framework's
// default namespace.
session_start();
$_SESSION['Default'] = ['initialized' => true];
header('Content-Type: application/json');
header('Cache-Control: no-store');
echo json_encode(['session_id' => session_id(), 'save_path' => session_save_path()]), "\n";
