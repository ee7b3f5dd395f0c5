<?php

/**
 * Owns gRPC dispatch on a worker (PROTOCOL.md §4.2–4.5): the registry of services keyed by full
 * service name, decoding the request context, invoking `Method(ContextInterface, Input): Output`
 * with protoc-generated message classes, and encoding the reply context (headers/trailers, or the
 * google.rpc.Status of a GRPCException) — anything else thrown becomes an ERROR frame.
 */

declare(strict_types=1);

namespace RRGrpc\GRPC;

use Google\Protobuf\Internal\Message;
use RRGrpc\GRPC\Exception\GRPCException;
use RRGrpc\GRPC\Exception\NotFoundException;
use RRGrpc\Worker\Payload;
use RRGrpc\Worker\Worker;

final class Server
{
    /** @var array<string, array{object, array<string, class-string<Message>>}> name => [impl, method => input class] */
    private array $services = [];

    /**
     * @param bool $debug send the full exception text (with trace) in ERROR frames, not just the message
     */
    public function __construct(private readonly bool $debug = false)
    {
    }

    /**
     * Register an implementation under its full service name (`package.Service`).
     *
     * @param string $interfaceOrName a service interface with a NAME constant (php/bin/generate.py
     *        output), or the full service name itself; then every public method whose second
     *        parameter is a protobuf message class becomes an rpc
     */
    public function registerService(string $interfaceOrName, object $service): void
    {
        if (\interface_exists($interfaceOrName)) {
            $const = $interfaceOrName . '::NAME';
            if (!\defined($const)) {
                throw new \InvalidArgumentException("service interface $interfaceOrName has no NAME constant");
            }
            if (!$service instanceof $interfaceOrName) {
                throw new \InvalidArgumentException(\get_class($service) . " does not implement $interfaceOrName");
            }
            $name = (string)\constant($const);
            $methods = self::methodsOf(new \ReflectionClass($interfaceOrName));
        } else {
            $name = $interfaceOrName;
            $methods = self::methodsOf(new \ReflectionObject($service));
        }
        if ($name === '' || $methods === []) {
            throw new \InvalidArgumentException("service `$name` has no name or no rpc methods");
        }
        if (isset($this->services[$name])) {
            throw new \InvalidArgumentException("service `$name` is already registered");
        }
        $this->services[$name] = [$service, $methods];
    }

    /** @return list<string> registered full service names */
    public function getServices(): array
    {
        return \array_keys($this->services);
    }

    /**
     * Serve requests until the server stops the worker.
     *
     * @param callable(): void|null $finalize called after every request (e.g. to reset state)
     */
    public function serve(Worker $worker, ?callable $finalize = null): void
    {
        while (($request = $worker->waitPayload()) !== null) {
            $this->handle($worker, $request);
            if ($finalize !== null) {
                $finalize();
            }
        }
    }

    /** Answer one request on $worker: a reply frame, a Status reply, or an ERROR frame. */
    public function handle(Worker $worker, Payload $request): void
    {
        $ctx = null;
        try {
            $call = \json_decode($request->header, true, 512, \JSON_THROW_ON_ERROR);
            if (!\is_array($call) || !\is_string($call['service'] ?? null) || !\is_string($call['method'] ?? null)) {
                throw new \UnexpectedValueException('request context is not {"service", "method", "context"}');
            }
            $ctx = new Context(\is_array($call['context'] ?? null) ? $call['context'] : []);
            $body = $this->invoke($call['service'], $call['method'], $ctx, $request->body);
            $worker->respond(new Payload($body, self::replyContext($ctx)));
        } catch (GRPCException $e) {
            $status = Status::encode($e->getCode(), $e->getMessage(), $e->getDetails());
            $worker->respond(new Payload('', self::replyContext($ctx ?? new Context(), \base64_encode($status))));
        } catch (\Throwable $e) {
            $worker->error($this->debug ? (string)$e : $e->getMessage());
        }
    }

    /**
     * Run one method: decode $body into its input class, call it, return the serialized result.
     *
     * @throws GRPCException NOT_FOUND for an unknown service or method, INTERNAL for a body that does
     *         not decode, and whatever the method throws
     */
    public function invoke(string $service, string $method, ContextInterface $ctx, string $body): string
    {
        if (!isset($this->services[$service])) {
            throw new NotFoundException("Service `$service` not found.");
        }
        [$impl, $methods] = $this->services[$service];
        $inputClass = $methods[$method] ?? null;
        if ($inputClass === null) {
            throw new NotFoundException("Method `$method` not found in service `$service`.");
        }
        $input = new $inputClass();
        if ($body !== '') {
            try {
                $input->mergeFromString($body);
            } catch (\Throwable $e) {
                throw new GRPCException(
                    "cannot decode the request of $service/$method as $inputClass: " . $e->getMessage(),
                    StatusCode::INTERNAL,
                );
            }
        }
        $output = $impl->{$method}($ctx, $input);
        if (!$output instanceof Message) {
            throw new \UnexpectedValueException(
                "$service/$method returned " . \get_debug_type($output) . ', not a protobuf message',
            );
        }
        return $output->serializeToString();
    }

    /** Reply context, variant A of PROTOCOL.md §4.3 (plus `error` when the call failed). */
    private static function replyContext(Context $ctx, ?string $error = null): string
    {
        $reply = $error === null ? [] : ['error' => $error];
        $reply['headers'] = $ctx->getHeaders()->packHeaders();
        $reply['trailers'] = $ctx->getTrailers()->packHeaders();
        return \json_encode($reply, \JSON_UNESCAPED_SLASHES | \JSON_THROW_ON_ERROR);
    }

    /**
     * rpc methods of a class or interface: public, non-static, second parameter a protobuf message.
     *
     * @return array<string, class-string<Message>> method name as declared => input class
     */
    private static function methodsOf(\ReflectionClass $class): array
    {
        $methods = [];
        foreach ($class->getMethods(\ReflectionMethod::IS_PUBLIC) as $m) {
            if ($m->isStatic() || $m->isConstructor() || $m->getNumberOfParameters() < 2) {
                continue;
            }
            $type = $m->getParameters()[1]->getType();
            if (!$type instanceof \ReflectionNamedType || $type->isBuiltin()) {
                continue;
            }
            $input = $type->getName();
            if (\is_subclass_of($input, Message::class)) {
                $methods[$m->getName()] = $input;
            }
        }
        return $methods;
    }
}
