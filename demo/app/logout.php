<?php
session_start();
session_destroy();
header('Content-Type: text/plain; charset=utf-8');
echo "déconnecté\n";
