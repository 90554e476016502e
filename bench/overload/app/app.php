<?php
// Shared code of the overload application: the database connection, the
// session, the CoupeCircuit state, and the error page a framework would show.
//
// The database is reached like in the incident it replays: a new connection
// per request, no pool in front of PostgreSQL. When PostgreSQL refuses it
// ("sorry, too many clients already") the request fails with a 500, exactly
// what a framework's uncaught-exception handler does.

declare(strict_types=1);

const NODE_HEADER = 'X-App-Node';

set_exception_handler(function (Throwable $error): void {
    error_log('overload app: ' . get_class($error) . ': ' . $error->getMessage());
    if (!headers_sent()) {
        http_response_code(500);
        header('Content-Type: text/html; charset=utf-8');
        header('Cache-Control: no-store');
    }
    echo "<!doctype html><title>Erreur interne</title><h1>Erreur interne</h1>\n";
});

/** The CoupeCircuit state, read as the README tells applications to. */
function etat(): string
{
    return $_SERVER['COUPECIRCUIT_ETAT'] ?? 'inconnu';
}

function overloaded(): bool
{
    $etat = etat();
    if ($etat === 'surcharge' || $etat === 'coupure') {
        return true;
    }
    // COUPECIRCUIT_ETAT holds CoupeCircuitHold seconds after a release too:
    // comparing the numbers as well stops new logins as soon as the node is
    // back at its threshold, instead of admitting everyone meanwhile.
    $seuil = $_SERVER['SEUIL_SESSIONS_ACTIVES'] ?? '';
    return $seuil !== '' && isset($_SERVER['SESSIONS_ACTIVES'])
        && (int) $_SERVER['SESSIONS_ACTIVES'] >= (int) $seuil;
}

function db(): PgSql\Connection
{
    $dsn = getenv('OVERLOAD_DSN') ?: ($_SERVER['OVERLOAD_DSN'] ?? '');
    $connection = @pg_connect($dsn, PGSQL_CONNECT_FORCE_NEW);
    if ($connection === false) {
        $last = error_get_last();
        throw new RuntimeException('database connection failed: ' . trim($last['message'] ?? 'unknown'));
    }
    return $connection;
}

/** One query with parameters; fails like the rest of the application. */
function query(PgSql\Connection $db, string $sql, array $params = []): array
{
    $result = @pg_query_params($db, $sql, $params);
    if ($result === false) {
        throw new RuntimeException('query failed: ' . pg_last_error($db));
    }
    return pg_fetch_all($result) ?: [];
}

/** The time a real page spends in the database, holding its connection. */
function hold(PgSql\Connection $db, float $seconds): void
{
    query($db, 'SELECT pg_sleep($1)', [$seconds]);
}

function logged_user(): ?string
{
    return $_SESSION['vzn_app']['storage'] ?? null;
}

function page_start(): void
{
    session_start();
    header('Content-Type: text/html; charset=utf-8');
    header('Cache-Control: no-store');
}

function require_login(): string
{
    $user = logged_user();
    if ($user === null) {
        session_write_close();
        http_response_code(302);
        header('Location: /login.php');
        exit("<!doctype html><title>Connexion</title><a href=\"/login.php\">Connexion</a>\n");
    }
    return $user;
}

function refuse_new_login(): never
{
    session_write_close();
    http_response_code(503);
    header('Retry-After: 30');
    exit("<!doctype html><title>Trop de monde</title><p>Le service est très sollicité : les nouvelles connexions "
        . "sont suspendues, réessayez dans quelques minutes.</p>\n");
}
