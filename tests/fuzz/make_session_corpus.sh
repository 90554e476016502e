#!/bin/sh
# Regenerates the seed corpus of fuzz_session_classifier: real session files
# written by the PHP CLI with each serialize_handler (php, php_serialize,
# php_binary, and igbinary with php8.2-igbinary), for a set of $_SESSION contents: Voozanoo/Zend sessions
# (authenticated, unknown, anonymous), Symfony sessions, objects with
# protected/private properties, Serializable objects, enums, references,
# nested arrays, floats, nulls and strings holding '|' or 's:7:"storage"'.
#
# Usage: tests/fuzz/make_session_corpus.sh [output-dir]
# Needs php-cli >= 8.1 (enums) and php8.2-igbinary. Output files: <case>.<handler>
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/corpus/session_classifier"}
php=${PHP:-php}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$out" "$work/sessions"

cat >"$work/write.php" <<'PHP'
<?php
// Fills $_SESSION for the case named in $argv[1]; PHP writes the file when
// the script ends.
interface Marker {}

class VznUser {
    public $login = 'jdupont';
    protected $roles = ['ROLE_USER'];
    private $storage = 'compte_reel';
}

class Plain {
    public $a = 1;
    protected $b = null;
    private $c = 1.5;
}

class LegacyBag implements Serializable {
    private $data;
    public function __construct($d) { $this->data = $d; }
    public function serialize() { return serialize($this->data); }
    public function unserialize($s) { $this->data = unserialize($s); }
}

enum Suit: string {
    case Hearts = 'H';
    case Spades = 'S';
}

class UsernamePasswordToken {
    private $user = 'jdupont';
    private $firewallName = 'main';
    private $roleNames = ['ROLE_USER', 'ROLE_ADMIN'];
    private $attributes = [];
    public function __serialize(): array {
        return [$this->user, $this->firewallName, $this->roleNames, $this->attributes];
    }
}

// Symfony's session bags: the attributes given, the usual metadata.
function symfony_session(array $attributes): void {
    $_SESSION['_sf2_attributes'] = $attributes;
    $_SESSION['_sf2_meta'] = ['u' => 1700000000, 'c' => 1699990000, 'l' => 0];
}

// Logged in through one firewall: its CSRF token and its security token.
function symfony_login(string $csrf_id, string $csrf_token, string $firewall): void {
    symfony_session(["_csrf/$csrf_id" => $csrf_token, "_security_$firewall" => serialize(new UsernamePasswordToken())]);
}

session_id('corpus');
session_start();
$_SESSION = [];
switch ($argv[1]) {
case 'zend_authenticated':
    $_SESSION['Default'] = ['initialized' => true];
    $_SESSION['__ZF'] = ['vzn_a15774ed86e9f3eaebc925162120cec2' => ['ENT' => 1585155117]];
    $_SESSION['vzn_a15774ed86e9f3eaebc925162120cec2'] = ['storage' => 'compte_reel'];
    break;
case 'zend_unknown':
    $_SESSION['Default'] = ['initialized' => true];
    $_SESSION['__ZF'] = ['vzn_a15774ed86e9f3eaebc925162120cec2' => ['ENT' => 1585145718]];
    break;
case 'zend_anonymous':
    $_SESSION['Default'] = ['initialized' => true];
    break;
case 'zend_marker_last':
    $_SESSION['Default'] = ['initialized' => true];
    $_SESSION['__ZF'] = ['vzn_x' => ['ENT' => 1585155117]];
    $_SESSION['vzn_x'] = ['prefs' => ['lang' => 'fr', 'rows' => 50], 'menu' => null, 'storage' => ['id' => 42, 'name' => 'compte_reel']];
    break;
case 'symfony_authenticated':
    symfony_login('authenticate', 'p6q1hY0x7xvH0mJd6l0b0Uo5sQ0', 'main');
    break;
case 'symfony_anonymous':
    symfony_session(['_csrf/authenticate' => 'p6q1hY0x7xvH0mJd6l0b0Uo5sQ0']);
    break;
case 'objects':
    $_SESSION['Default'] = ['initialized' => true];
    $_SESSION['vzn_user'] = new VznUser();
    $_SESSION['plain'] = new Plain();
    $o = new stdClass();
    $o->note = 'storage';
    $o->{'0'} = 'numeric property';
    $_SESSION['std'] = $o;
    $_SESSION['spl'] = new SplObjectStorage();
    $_SESSION['ao'] = new ArrayObject(['x' => 1]);
    break;
case 'serializable_enum':
    $_SESSION['Default'] = ['initialized' => true];
    $_SESSION['legacy'] = new LegacyBag(['storage' => 'inside an opaque C: payload']);
    $_SESSION['suit'] = Suit::Hearts;
    $_SESSION['suits'] = [Suit::Spades, Suit::Hearts];
    break;
case 'references':
    $shared = ['storage' => 'shared'];
    $_SESSION['first'] = &$shared;
    $_SESSION['second'] = &$shared;
    $obj = new stdClass();
    $_SESSION['o1'] = $obj;
    $_SESSION['o2'] = $obj;
    break;
case 'nested_scalars':
    $_SESSION['Default'] = ['initialized' => true];
    $deep = ['leaf' => 'bottom'];
    for ($i = 0; $i < 20; $i++) { $deep = ['level' . $i => $deep, $i => -$i]; }
    $_SESSION['deep'] = $deep;
    $_SESSION['floats'] = [1.5, -0.0, 0.1, 1e25, -1.5e-10, INF, -INF, NAN, PHP_FLOAT_MAX, PHP_FLOAT_EPSILON];
    $_SESSION['ints'] = [0, -12, PHP_INT_MAX, PHP_INT_MIN];
    $_SESSION['nulls'] = [null, false, true, '', []];
    $_SESSION['utf8'] = "élève \u{1F600} naïve";
    break;
case 'adversarial_strings':
    $_SESSION['Default'] = ['initialized' => true];
    $_SESSION['note'] = 'x|vzn|a:1:{s:7:"storage";s:11:"compte_reel";}';
    $_SESSION['vzn_x'] = ['comment' => 'storage', 'text' => 's:7:"storage";b:1;} | storage|'];
    $_SESSION['pipes'] = ['|' => '||', 'a|b' => "\0|\n"];
    break;
case 'adversarial_authenticated':
    $_SESSION['note'] = 'a:1:{s:7:"storage";} |';
    $_SESSION['vzn_x'] = ['storage' => 's:7:"storage";|'];
    break;
case 'big_then_marker':
    $_SESSION['Default'] = ['initialized' => true];
    $_SESSION['blob'] = str_repeat('0123456789abcdef', 3800);
    $_SESSION['vzn_x'] = ['storage' => 'compte_reel'];
    break;
case 'empty':
    break;
case 'two_firewalls':
    symfony_login('admin', 'q7r2iZ1y8ywI1nKe7m1c1Vp6tR1', 'admin');
    break;
case 'plain_user_id':
    $_SESSION['user_id'] = 42;
    $_SESSION['cart'] = ['sku-1' => 2];
    break;
case 'string_backrefs':
    // igbinary writes the second "storage" (a key) as a back-reference to
    // the first (a value); the same for the repeated keys of the list.
    $_SESSION['label'] = 'storage';
    $_SESSION['items'] = [['id' => 1, 'qty' => 2], ['id' => 2, 'qty' => 1]];
    $_SESSION['vzn_x'] = ['storage' => 'compte_reel'];
    break;
case 'big_cart_then_marker':
    $cart = [];
    for ($i = 0; $i < 2000; $i++) { $cart['sku-' . $i] = ['qty' => $i % 7, 'label' => 'Item ' . $i . ' ' . str_repeat('x', 16)]; }
    $_SESSION['cart'] = $cart;
    $_SESSION['vzn_x'] = ['storage' => 'compte_reel'];
    break;
default:
    fwrite(STDERR, "unknown case {$argv[1]}\n");
    exit(1);
}
PHP

cases="zend_authenticated zend_unknown zend_anonymous zend_marker_last
symfony_authenticated symfony_anonymous objects serializable_enum references
nested_scalars adversarial_strings adversarial_authenticated big_then_marker empty
two_firewalls plain_user_id string_backrefs big_cart_then_marker"

for handler in php php_serialize php_binary igbinary; do
  for c in $cases; do
    rm -f "$work/sessions/sess_corpus"
    "$php" -n -d session.save_handler=files -d "session.save_path=$work/sessions" \
      -d extension=igbinary -d "session.serialize_handler=$handler" -d session.use_cookies=0 \
      -d session.use_strict_mode=0 -d error_reporting=0 -d display_errors=0 \
      "$work/write.php" "$c"
    cat "$work/sessions/sess_corpus" >"$out/$c.$handler"
  done
done
echo "wrote $(ls "$out" | wc -l) files to $out"
