namespace HybridServing.Gateway.Forwarding;

/// <summary>
/// Wraps the response body on its way to the client: notes when the first byte leaves (for a
/// stream that is the first token, which is what TTFT means to a user; engines send headers
/// before any token) and keeps the last few KB, where the engine reports token usage.
/// Bytes pass through unchanged and unbuffered.
/// </summary>
internal sealed class ResponseTap(Stream inner, Action onFirstByte) : Stream
{
    public const int TailBytes = 4096;
    // Pooled: one tap per forwarded request must not cost a fresh 4 KB each time.
    private byte[] _tail = System.Buffers.ArrayPool<byte>.Shared.Rent(TailBytes);
    // A ring: the next byte goes to _next; _tailLength bytes (up to TailBytes) end just before it. Each
    // chunk costs a copy of itself only (a stream of small SSE chunks used to move the whole tail each time).
    private int _next;
    private int _tailLength;
    private Action? _onFirstByte = onFirstByte;

    /// <summary>The last bytes written (up to <see cref="TailBytes"/>), in order; read once the response is done.</summary>
    public ReadOnlySpan<byte> Tail
    {
        get
        {
            if (_tail.Length == 0) return [];
            var start = (_next - _tailLength + TailBytes) % TailBytes;
            if (start + _tailLength > TailBytes)
            {
                // Wrapped: straighten the ring in place (once per response).
                _tail.AsSpan(0, TailBytes).Slice(0, start).Reverse();
                _tail.AsSpan(start, TailBytes - start).Reverse();
                _tail.AsSpan(0, TailBytes).Reverse();
                start = 0;
                _next = _tailLength % TailBytes;
            }
            return _tail.AsSpan(start, _tailLength);
        }
    }

    private void Observe(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        if (_onFirstByte is { } callback)
        {
            _onFirstByte = null;
            callback();
        }
        if (_tail.Length == 0) return; // disposed
        if (data.Length > TailBytes) data = data[^TailBytes..];
        var first = Math.Min(data.Length, TailBytes - _next);
        data[..first].CopyTo(_tail.AsSpan(_next));
        data[first..].CopyTo(_tail);
        _next = (_next + data.Length) % TailBytes;
        _tailLength = Math.Min(TailBytes, _tailLength + data.Length);
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Observe(buffer.Span);
        return inner.WriteAsync(buffer, cancellationToken);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count)
    {
        Observe(buffer.AsSpan(offset, count));
        inner.Write(buffer, offset, count);
    }

    /// <summary>Returns the tail buffer to the pool; the wrapped stream belongs to the server and stays open.</summary>
    protected override void Dispose(bool disposing)
    {
        var tail = Interlocked.Exchange(ref _tail, []);
        _tailLength = 0;
        _next = 0;
        if (tail.Length > 0) System.Buffers.ArrayPool<byte>.Shared.Return(tail);
        base.Dispose(disposing);
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
    public override void Flush() => inner.Flush();
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
