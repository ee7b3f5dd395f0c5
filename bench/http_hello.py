"""`rr serve` with PHP HTTP workers vs nginx + php-fpm serving the same PHP hello, in one run.

Usage: python bench/http_hello.py [--workers 2] [--duration 8] [--connections 32] [--codec proto]
                                  [--nginx-workers 1|auto]

Both sides run the same amount of PHP (``--workers`` processes; FPM ``pm = static``) with opcache
on, on 127.0.0.1 free ports, configs written to a temp dir and run as the current user. Each is
measured with ``wrk -t2 -c<connections> -d<duration>s --latency`` after a short warm-up; the
figures are requests/s, p50 and p99 latency, and the rr/fpm ratio.

Fairness: the same PHP process count, opcache on both sides (``opcache.enable`` for FPM,
``opcache.enable_cli`` for rr's CLI workers), the same body, HTTP/1.1 keep-alive from wrk to both
fronts (nginx -> FPM is a FastCGI connection per request, as Debian's default), and one front
process each by default (``worker_processes 1`` vs rr serve's single event loop).

The framework-weight variant (see ``SYMFONY_APP``) boots a Symfony full-stack kernel
(FrameworkBundle + TwigBundle, prod mode, cached container) once per rr worker and once per
request under FPM; it is skipped with a message when the Debian packages are not installed
(apt-get install php-symfony-framework-bundle php-symfony-twig-bundle).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHP = os.environ.get("PHP", "php")
FPM = shutil.which("php-fpm8.2") or shutil.which("php-fpm") or "php-fpm"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SYMFONY = [Path("/usr/share/php/Symfony/Bundle", b) for b in ("FrameworkBundle", "TwigBundle")]

RR_HELLO = """<?php
require '{root}/php/autoload.php';
$http = RRGrpc\\Http\\HttpWorker::create();
while ($http->waitRequest() !== null) {{
    $http->respond(200, 'Hello, World!', ['Content-Type' => 'text/plain']);
}}
"""
FPM_HELLO = """<?php
header('Content-Type: text/plain');
echo 'Hello, World!';
"""
# Framework weight: a Symfony 5.4 full-stack kernel as production runs it (Debian packages
# php-symfony-framework-bundle and php-symfony-twig-bundle, which pull HttpKernel, Routing,
# EventDispatcher, DependencyInjection, Config, Cache, Twig...). AppKernel (MicroKernelTrait, env
# "prod", debug off) registers FrameworkBundle and TwigBundle, two autowired controller services and
# five routes; "/" renders a Twig template ("Hello, World!"). The first boot compiles and dumps the
# container, the URL matcher and the Twig templates to the app's cache dir; later boots load them
# from there (opcache'd), as a deployed Symfony app does. Under FPM every request constructs and
# boots the kernel (shared-nothing); an rr worker boots it once and Symfony resets its services
# between requests.
SYMFONY_APP = """<?php
require_once '/usr/share/php/Symfony/Bundle/FrameworkBundle/autoload.php';
require_once '/usr/share/php/Symfony/Bundle/TwigBundle/autoload.php';
use Symfony\\Bundle\\FrameworkBundle\\FrameworkBundle;
use Symfony\\Bundle\\FrameworkBundle\\Kernel\\MicroKernelTrait;
use Symfony\\Bundle\\TwigBundle\\TwigBundle;
use Symfony\\Component\\DependencyInjection\\Loader\\Configurator\\ContainerConfigurator;
use Symfony\\Component\\HttpFoundation\\{{JsonResponse, Request, Response}};
use Symfony\\Component\\HttpKernel\\Kernel;
use Symfony\\Component\\Routing\\Loader\\Configurator\\RoutingConfigurator;
use Twig\\Environment;

final class PageController {{
    public function __construct(private Environment $twig) {{}}
    public function home(): Response {{ return new Response($this->twig->render('hello.html.twig', ['name' => 'World'])); }}
    public function greet(string $name): Response {{ return new Response($this->twig->render('hello.html.twig', ['name' => $name])); }}
    public function about(): Response {{ return new Response('about'); }}
}}
final class ItemController {{
    public function show(int $id): JsonResponse {{ return new JsonResponse(['id' => $id]); }}
    public function list(): JsonResponse {{ return new JsonResponse([['id' => 1], ['id' => 2]]); }}
}}
final class AppKernel extends Kernel {{
    use MicroKernelTrait;
    public function __construct(private string $dir) {{ parent::__construct('prod', false); }}
    public function registerBundles(): iterable {{ return [new FrameworkBundle(), new TwigBundle()]; }}
    public function getProjectDir(): string {{ return $this->dir; }}
    public function getCacheDir(): string {{ return $this->dir . '/cache'; }}
    public function getLogDir(): string {{ return $this->dir . '/log'; }}
    protected function configureContainer(ContainerConfigurator $c): void {{
        $c->extension('framework', ['secret' => 'bench', 'http_method_override' => false, 'router' => ['utf8' => true]]);
        $c->extension('twig', ['default_path' => '%kernel.project_dir%/templates']);
        $s = $c->services()->defaults()->autowire()->autoconfigure();
        $s->set(PageController::class, PageController::class)->public()->tag('controller.service_arguments');
        $s->set(ItemController::class, ItemController::class)->public()->tag('controller.service_arguments');
    }}
    protected function configureRoutes(RoutingConfigurator $r): void {{
        $r->add('home', '/')->controller([PageController::class, 'home']);
        $r->add('greet', '/hello/{{name}}')->controller([PageController::class, 'greet']);
        $r->add('about', '/about')->controller([PageController::class, 'about']);
        $r->add('items', '/items')->controller([ItemController::class, 'list'])->methods(['GET']);
        $r->add('item', '/items/{{id}}')->controller([ItemController::class, 'show'])->requirements(['id' => '\\d+']);
    }}
}}
function build_kernel(): Kernel {{
    return new AppKernel('{app_dir}');
}}
"""
TWIG_TEMPLATE = "Hello, {{ name }}!"
RR_SYMFONY = SYMFONY_APP + """
require '{root}/php/autoload.php';
$kernel = build_kernel();
$http = RRGrpc\\Http\\HttpWorker::create();
while (($req = $http->waitRequest()) !== null) {{
    $sfReq = Request::create($req->uri, $req->method, [], $req->cookies, [], [], $req->body);
    $resp = $kernel->handle($sfReq);
    $http->respond($resp->getStatusCode(), (string) $resp->getContent(), $resp->headers->all());
    $kernel->terminate($sfReq, $resp);
}}
"""
FPM_SYMFONY = SYMFONY_APP + """
$kernel = build_kernel();
$request = Request::createFromGlobals();
$response = $kernel->handle($request);
$response->send();
$kernel->terminate($request, $response);
"""
@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, budget: float = 30.0) -> None:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(12).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing answered 200 on port {port} within {budget:g}s")


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise SystemExit(f"cannot read wrk latency {text!r}")
    value, unit = found.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(name: str, port: int, args: argparse.Namespace) -> Result:
    url = f"http://127.0.0.1:{port}/"
    subprocess.run(["wrk", "-t2", "-c8", "-d1s", url], capture_output=True, check=True)  # warm-up
    out = subprocess.run(
        ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    if os.environ.get("BENCH_VERBOSE"):
        print(out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{name}: {errors.group(1)} failed responses\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    return Result(name, rps, p50, p99)


def render(script: str, app_dir: Path) -> str:
    """The PHP script text; ``app_dir`` gets the Twig template and the app's cache (framework variant)."""
    (app_dir / "templates").mkdir(parents=True, exist_ok=True)
    (app_dir / "templates" / "hello.html.twig").write_text(TWIG_TEMPLATE)
    return script.format(root=ROOT, app_dir=app_dir)


@contextlib.contextmanager
def running(argv: list[str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_rr(tmp: Path, script: str, args: argparse.Namespace, name: str) -> Result:
    port = free_port()
    (tmp / "rr_worker.php").write_text(render(script, tmp / "app-rr"))
    (tmp / "rr.yaml").write_text(textwrap.dedent(f"""\
        version: "3"
        server:
          command: "{PHP} -d opcache.enable_cli=1 rr_worker.php"
        http:
          address: 127.0.0.1:{port}
          codec: {args.codec}
          pool:
            num_workers: {args.workers}
        logs:
          level: error
        """))
    argv = [sys.executable, "-m", "rrgrpc", "-c", str(tmp / "rr.yaml"), "serve"]
    with running(argv, tmp, tmp / "rr.log"):
        wait_http(port)
        return wrk(name, port, args)


def bench_fpm(tmp: Path, script: str, args: argparse.Namespace, name: str) -> Result:
    http_port = free_port()
    docroot = tmp / "www"
    docroot.mkdir(exist_ok=True)
    (docroot / "index.php").write_text(render(script, tmp / "app-fpm"))
    root_user = os.geteuid() == 0
    (tmp / "fpm.conf").write_text(textwrap.dedent(f"""\
        [global]
        pid = {tmp}/fpm.pid
        error_log = {tmp}/fpm.log
        daemonize = no
        [www]
        {"user = root" if root_user else ""}
        {"group = root" if root_user else ""}
        listen = {tmp}/fpm.sock
        pm = static
        pm.max_children = {args.workers}
        pm.max_requests = 0
        """))
    (tmp / "nginx.conf").write_text(textwrap.dedent(f"""\
        worker_processes {args.nginx_workers};
        {"user root;" if root_user else ""}
        pid {tmp}/nginx.pid;
        error_log {tmp}/nginx.err warn;
        daemon off;
        events {{ worker_connections 1024; }}
        http {{
            access_log off;
            client_body_temp_path {tmp}/body; fastcgi_temp_path {tmp}/fcgi; proxy_temp_path {tmp}/proxy;
            uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
            server {{
                listen 127.0.0.1:{http_port};
                root {docroot};
                location / {{
                    include /etc/nginx/fastcgi_params;
                    fastcgi_param SCRIPT_FILENAME {docroot}/index.php;
                    fastcgi_pass unix:{tmp}/fpm.sock;
                }}
            }}
        }}
        """))
    fpm_argv = [FPM, "-F", "-y", str(tmp / "fpm.conf"), "-d", "opcache.enable=1"] + (["-R"] if root_user else [])
    with running(fpm_argv, tmp, tmp / "fpm.out"), running([NGINX, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], tmp, tmp / "nginx.out"):
        wait_http(http_port)
        return wrk(name, http_port, args)


def show(a: Result, b: Result) -> None:
    for r in (a, b):
        print(f"  {r.name:<28} {r.rps:>10.0f} req/s   p50 {r.p50_ms:7.2f} ms   p99 {r.p99_ms:7.2f} ms")
    print(f"  ratio rr/fpm: {a.rps / b.rps:.2f}x throughput, p99 {a.p99_ms / b.p99_ms:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--codec", choices=("proto", "json"), default="proto")
    parser.add_argument("--nginx-workers", default="1",
                        help="nginx worker_processes: 1 (default) = one front process, as rr serve's one event loop; or auto")
    args = parser.parse_args()
    for tool in ("wrk", NGINX, FPM):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed")
    print(f"hello: {args.workers} PHP workers each side, wrk -t2 -c{args.connections} -d{args.duration}s, "
          f"codec {args.codec}, nginx worker_processes {args.nginx_workers}")
    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmp:
        rr = bench_rr(Path(tmp), RR_HELLO, args, "rr serve (PHP workers)")
        fpm = bench_fpm(Path(tmp), FPM_HELLO, args, "nginx + php-fpm")
    show(rr, fpm)
    missing = [str(p) for p in SYMFONY if not p.is_dir()]
    if missing:
        print(f"framework variant skipped: {', '.join(missing)} missing (see the module docstring)")
        return
    print("framework (Symfony FrameworkBundle + TwigBundle kernel booted once per rr worker, per request under FPM):")
    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmp:
        rr = bench_rr(Path(tmp), RR_SYMFONY, args, "rr serve + Symfony")
        fpm = bench_fpm(Path(tmp), FPM_SYMFONY, args, "nginx + php-fpm + Symfony")
    show(rr, fpm)


if __name__ == "__main__":
    main()
