"""`rr serve` with PHP HTTP workers vs nginx + php-fpm serving the same PHP hello, in one run.

Usage: python bench/http_hello.py [--workers 2] [--duration 8] [--connections 32] [--codec proto]
                                  [--nginx-workers 1|auto]

Both sides run the same amount of PHP (``--workers`` processes; FPM ``pm = static``) with opcache
on, on 127.0.0.1 free ports, configs written to a temp dir and run as the current user. Each is
measured with ``wrk -t2 -c<connections> -d<duration>s --latency`` after a short warm-up; the
figures are requests/s, p50 and p99 latency, and the rr/fpm ratio. Each side runs once, one after
the other: for figures that hold on a shared machine use bench/run_all.py (interleaved rounds).
The script first prints bench/machine.py's report and calibration, and for rr the event loop its
process runs, whether aiohttp's C parser is loaded, and its CPU per request (user and system apart)
next to the PHP workers' and wrk's: what tells two machines' figures apart.

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
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

# the script's own folder is on sys.path: the helpers all benches share
from common import PHP, ROOT, Group, Load, cpu_now, free_port, mapped, rr_command, running, wait_http, wrk
from machine import Stat, describe

FPM = shutil.which("php-fpm8.2") or shutil.which("php-fpm") or "php-fpm"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SYMFONY = [Path("/usr/share/php/Symfony/Bundle", b) for b in ("FrameworkBundle", "TwigBundle")]

# The hello answers "Hello, World!", or ``?size=N`` bytes (the payload variants of bench/run_all.py).
RR_HELLO = """<?php
require '{root}/php/autoload.php';
$http = RRGrpc\\Http\\HttpWorker::create();
while (($req = $http->waitRequest()) !== null) {{
    $size = (int) ($req->query['size'] ?? 0);
    $http->respond(200, $size > 0 ? str_repeat('x', $size) : 'Hello, World!', ['Content-Type' => 'text/plain']);
}}
"""
FPM_HELLO = """<?php
header('Content-Type: text/plain');
$size = (int) ($_GET['size'] ?? 0);
echo $size > 0 ? str_repeat('x', $size) : 'Hello, World!';
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


def render(script: str, app_dir: Path) -> str:
    """The PHP script text; ``app_dir`` gets the Twig template and the app's cache (framework variant)."""
    (app_dir / "templates").mkdir(parents=True, exist_ok=True)
    (app_dir / "templates" / "hello.html.twig").write_text(TWIG_TEMPLATE)
    return script.format(root=ROOT, app_dir=app_dir)


def rr_yaml(port: int, workers: int, codec: str | None = None) -> str:
    """The .rr.yaml of the HTTP benches; without ``codec`` (an rrgrpc key) RoadRunner reads it as is."""
    codec_line = f"\n  codec: {codec}" if codec else ""
    return (
        'version: "3"\n'
        f'server:\n  command: "{PHP} -d opcache.enable_cli=1 rr_worker.php"\n'
        f"http:\n  address: 127.0.0.1:{port}{codec_line}\n  pool:\n    num_workers: {workers}\n"
        "logs:\n  level: error\n"
    )


@contextlib.contextmanager
def fpm_server(tmp: Path, script: str, workers: int, nginx_workers: str = "1") -> Iterator[tuple[int, int, int]]:
    """nginx + php-fpm serving ``script`` (``workers`` static FPM children); yields (port, nginx pid, fpm pid)."""
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
        pm.max_children = {workers}
        pm.max_requests = 0
        """))
    (tmp / "nginx.conf").write_text(textwrap.dedent(f"""\
        worker_processes {nginx_workers};
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
    nginx_argv = [NGINX, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]
    with running(fpm_argv, tmp, tmp / "fpm.out") as fpm, running(nginx_argv, tmp, tmp / "nginx.out") as nginx:
        wait_http(http_port, nginx, log=tmp / "nginx.out")
        yield http_port, nginx.pid, fpm.pid


def load(port: int, args: argparse.Namespace) -> Load:
    """A warm-up, then the measured wrk run."""
    wrk(f"http://127.0.0.1:{port}/", 2, 8, 1)
    return wrk(f"http://127.0.0.1:{port}/", 2, args.connections, args.duration)


def bench_rr(tmp: Path, script: str, args: argparse.Namespace) -> Load:
    port = free_port()
    (tmp / "rr_worker.php").write_text(render(script, tmp / "app-rr"))
    (tmp / "rr.yaml").write_text(rr_yaml(port, args.workers, args.codec))
    with running([*rr_command(), "-c", str(tmp / "rr.yaml"), "serve"], tmp, tmp / "rr.log") as proc:
        wait_http(port, proc, log=tmp / "rr.log")
        loop = "uvloop" if mapped(proc.pid, "uvloop") else "asyncio"
        parser = "C" if mapped(proc.pid, "_http_parser") else "pure-Python"
        print(f"  rr (pid {proc.pid}): event loop {loop}, aiohttp {parser} HTTP parser, log level error, no access log")
        groups = {"rr": Group(proc.pid), "php": Group(proc.pid, "children")}
        wrk(f"http://127.0.0.1:{port}/", 2, 8, 1)  # warm-up, outside the CPU window
        before = cpu_now(groups)
        got = wrk(f"http://127.0.0.1:{port}/", 2, args.connections, args.duration)
        cpu = cpu_now(groups) - before
        n = got.ok + got.errors
        print(f"  CPU µs per request: rr {cpu.user['rr'] / n * 1e6:.0f} user + {cpu.system['rr'] / n * 1e6:.0f} system, "
              f"PHP workers {cpu.total('php') / n * 1e6:.0f}, wrk {cpu.total('load') / n * 1e6:.0f}")
        return got


def bench_fpm(tmp: Path, script: str, args: argparse.Namespace) -> Load:
    with fpm_server(tmp, script, args.workers, args.nginx_workers) as (port, _nginx, _fpm):
        return load(port, args)


def show(rr: Load, fpm: Load, what: str) -> None:
    for name, r in ((f"rr serve{what}", rr), (f"nginx + php-fpm{what}", fpm)):
        print(f"  {name:<28} {r.rps:>10.0f} req/s   p50 {r.p50:7.2f} ms   p99 {r.p99:7.2f} ms   errors {r.errors}")
    print(f"  ratio rr/fpm: {rr.rps / fpm.rps:.2f}x throughput, p99 {rr.p99 / fpm.p99:.2f}x")


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
    start = Stat.now()
    describe()
    print(f"hello: {args.workers} PHP workers each side, wrk -t2 -c{args.connections} -d{args.duration}s, "
          f"codec {args.codec}, nginx worker_processes {args.nginx_workers}")
    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmp:
        rr = bench_rr(Path(tmp), RR_HELLO, args)
        fpm = bench_fpm(Path(tmp), FPM_HELLO, args)
    show(rr, fpm, "")
    missing = [str(p) for p in SYMFONY if not p.is_dir()]
    if missing:
        print(f"framework variant skipped: {', '.join(missing)} missing (see the module docstring)")
    else:
        framework(args)
    print(Stat.now().since(start))


def framework(args: argparse.Namespace) -> None:
    print("framework (Symfony FrameworkBundle + TwigBundle kernel booted once per rr worker, per request under FPM):")
    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmp:
        rr = bench_rr(Path(tmp), RR_SYMFONY, args)
        fpm = bench_fpm(Path(tmp), FPM_SYMFONY, args)
    show(rr, fpm, " + Symfony")


if __name__ == "__main__":
    main()
