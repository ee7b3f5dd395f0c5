<?php

/**
 * Owns the exception that ends a gRPC call with a status: code, message and detail messages
 * (sent to the server as a google.rpc.Status in the reply context, PROTOCOL.md §4.4 case 1).
 */

declare(strict_types=1);

namespace RRGrpc\GRPC\Exception;

use Google\Protobuf\Internal\Message;
use RRGrpc\GRPC\StatusCode;

class GRPCException extends \RuntimeException
{
    /** The code used when none is given. */
    protected const CODE = StatusCode::UNKNOWN;

    /** @var list<Message> */
    private array $details;

    /**
     * @param list<Message> $details protobuf messages, each sent packed in a google.protobuf.Any
     */
    public function __construct(string $message = '', ?int $code = null, array $details = [], ?\Throwable $previous = null)
    {
        parent::__construct($message, $code ?? static::CODE, $previous);
        $this->details = \array_values($details);
    }

    /**
     * @param list<Message> $details
     */
    public static function create(string $message, ?int $code = null, ?\Throwable $previous = null, array $details = []): static
    {
        return new static($message, $code, $details, $previous);
    }

    /** @return list<Message> */
    public function getDetails(): array
    {
        return $this->details;
    }

    /**
     * @param list<Message> $details
     */
    public function setDetails(array $details): void
    {
        $this->details = \array_values($details);
    }

    public function addDetails(Message ...$details): void
    {
        \array_push($this->details, ...$details);
    }
}
