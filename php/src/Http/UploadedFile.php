<?php

/**
 * Owns one uploaded file as the server reports it (PROTOCOL.md §5.5): client name and type, size,
 * PHP UPLOAD_ERR_* code and the temporary copy, which the server deletes after the response.
 */

declare(strict_types=1);

namespace RRGrpc\Http;

final class UploadedFile
{
    public function __construct(
        public readonly string $name,
        public readonly string $mime,
        public readonly int $size,
        public readonly int $error,
        public readonly string $tmpName,
    ) {
    }

    public function isValid(): bool
    {
        return $this->error === \UPLOAD_ERR_OK && $this->tmpName !== '';
    }

    public function contents(): string
    {
        if (!$this->isValid()) {
            throw new \RuntimeException("upload {$this->name} failed with error {$this->error}");
        }
        return (string) \file_get_contents($this->tmpName);
    }

    /** Keep the file: copy it away from the temporary location the server will clean up. */
    public function moveTo(string $target): void
    {
        if (!$this->isValid() || !\copy($this->tmpName, $target)) {
            throw new \RuntimeException("cannot move upload {$this->name} to {$target}");
        }
    }
}
