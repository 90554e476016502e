<?php
// Writes one session file with Symfony 5.4's own session and security
// classes (Debian's php-symfony-http-foundation, -security-core, -csrf,
// -http): NativeSessionStorage with its attribute and metadata bags, the
// real UsernamePasswordToken serialized as the firewall's ContextListener
// stores it, the real CSRF token manager, TargetPathTrait, and the logout
// path's Session::invalidate().
//
// Usage: php symfony_session.php <save_path> <case> [<session id>]
//   form_login_main   a user logged in through the "main" firewall
//   form_login_admin  a user logged in through the "admin" firewall only
//   two_firewalls     logged in on both firewalls
//   csrf_only         a visitor who was shown the login form (CSRF token)
//   target_path_only  a visitor redirected to the login page (target path)
//   logout            logged in, then logged out (the session invalidated)
// Prints the id of the session it leaves behind.
require_once '/usr/share/php/Symfony/Component/HttpFoundation/autoload.php';
require_once '/usr/share/php/Symfony/Component/Security/Core/autoload.php';
require_once '/usr/share/php/Symfony/Component/Security/Csrf/autoload.php';
require_once '/usr/share/php/Symfony/Component/Security/Http/autoload.php';

use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\HttpFoundation\RequestStack;
use Symfony\Component\HttpFoundation\Session\Session;
use Symfony\Component\HttpFoundation\Session\Storage\Handler\NativeFileSessionHandler;
use Symfony\Component\HttpFoundation\Session\Storage\NativeSessionStorage;
use Symfony\Component\Security\Core\Authentication\Token\UsernamePasswordToken;
use Symfony\Component\Security\Core\User\InMemoryUser;
use Symfony\Component\Security\Csrf\CsrfTokenManager;
use Symfony\Component\Security\Csrf\TokenGenerator\UriSafeTokenGenerator;
use Symfony\Component\Security\Csrf\TokenStorage\SessionTokenStorage;
use Symfony\Component\Security\Http\Util\TargetPathTrait;

[$script, $savePath, $case] = $argv;

final class Visitor
{
    use TargetPathTrait;

    public function redirectedToLogin(Session $session, string $firewall, string $uri): void
    {
        $this->saveTargetPath($session, $firewall, $uri);
    }
}

function open_session(string $savePath): Session
{
    $storage = new NativeSessionStorage(['use_cookies' => 0, 'use_strict_mode' => 0, 'gc_probability' => 0],
        new NativeFileSessionHandler($savePath));
    $session = new Session($storage);
    $session->start();
    return $session;
}

// What the firewall does on a successful form login: a new session id
// (SessionAuthenticationStrategy "migrate"), then ContextListener stores
// the serialized token under "_security_<firewall>" at the response.
function log_in(Session $session, string $firewall): void
{
    $session->migrate(true);
    $user = new InMemoryUser('jdupont', null, ['ROLE_USER']);
    $token = new UsernamePasswordToken($user, $firewall, $user->getRoles());
    $session->set('_security_' . $firewall, serialize($token));
}

function csrf_token(Session $session): void
{
    $request = new Request();
    $request->setSession($session);
    $stack = new RequestStack();
    $stack->push($request);
    $manager = new CsrfTokenManager(new UriSafeTokenGenerator(), new SessionTokenStorage($stack));
    $manager->getToken('authenticate');
}

$session = open_session($savePath);
switch ($case) {
    case 'form_login_main':
        csrf_token($session);
        log_in($session, 'main');
        break;
    case 'form_login_admin':
        csrf_token($session);
        log_in($session, 'admin');
        break;
    case 'two_firewalls':
        log_in($session, 'main');
        log_in($session, 'admin');
        break;
    case 'csrf_only':
        csrf_token($session);
        break;
    case 'target_path_only':
        (new Visitor())->redirectedToLogin($session, 'main', 'https://shop.example/account');
        break;
    case 'logout':
        log_in($session, 'main');
        $session->save();
        // The next request: LogoutListener with invalidate_session.
        $id = $session->getId();
        $session = open_session($savePath);
        if ($session->getId() !== $id && $id !== '') {
            fwrite(STDERR, "session lost between requests\n");
            exit(2);
        }
        $session->invalidate();
        break;
    default:
        fwrite(STDERR, "unknown case $case\n");
        exit(2);
}
$session->save();
echo $session->getId(), "\n";
