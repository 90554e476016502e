<?php
// A Zend/Voozanoo style login: the session gets an authenticated storage.
session_start();
$_SESSION['Default'] = ['initialized' => true];
$_SESSION['vzn_test'] = ['storage' => 'compte_reel'];
header('Content-Type: application/json');
header('Cache-Control: no-store');
echo json_encode(['session_id' => session_id(), 'save_path' => session_save_path()]), "\n";
