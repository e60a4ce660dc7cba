using System.Buffers;
using Microsoft.AspNetCore.Http.Features;

namespace HybridServing.Gateway.Forwarding;

/// <summary>The body could not be received: too slow (408) or cut off or malformed on the wire (400).</summary>
internal sealed class RequestBodyException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}

/// <summary>A request body read once into a pooled buffer; returned to the pool on dispose.</summary>
internal sealed class RequestBody : IDisposable
{
    private byte[]? _buffer;

    private RequestBody(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    public int Length { get; }

    public ReadOnlySpan<byte> Span => (_buffer ?? throw new ObjectDisposedException(nameof(RequestBody))).AsSpan(0, Length);

    /// <summary>A fresh read-only stream over the bytes (one per forwarding attempt).</summary>
    public Stream OpenRead() => new MemoryStream(_buffer ?? throw new ObjectDisposedException(nameof(RequestBody)), 0, Length, writable: false);

    /// <summary>
    /// Reads at most <paramref name="maxBytes"/> within <paramref name="timeout"/>; null means the body is larger
    /// (answer 413). A body not received in time, or one Kestrel rejects (too slow, cut off), is a <see cref="RequestBodyException"/>.
    /// </summary>
    public static async Task<RequestBody?> ReadAsync(HttpRequest request, int maxBytes, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            return await ReadAsync(request, maxBytes, deadline.Token);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new RequestBodyException(StatusCodes.Status408RequestTimeout,
                $"The request body did not arrive within {timeout.TotalSeconds:0.###} s; send it at once.");
        }
        catch (BadHttpRequestException e)
        {
            throw new RequestBodyException(e.StatusCode, e.StatusCode == StatusCodes.Status408RequestTimeout
                ? "The request body arrived too slowly (below the minimum data rate); send it at once."
                : $"The request body could not be read: {e.Message}");
        }
    }

    private static async Task<RequestBody?> ReadAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        if (request.ContentLength > maxBytes) return null;
        // Our limit, not Kestrel's default 30 MB, decides; one byte more lets us see "too large".
        var sizeFeature = request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (sizeFeature is { IsReadOnly: false }) sizeFeature.MaxRequestBodySize = (long)maxBytes + 1;

        var initial = (int)Math.Clamp(request.ContentLength ?? 16 * 1024, 1, maxBytes + 1L);
        var buffer = ArrayPool<byte>.Shared.Rent(initial);
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length > maxBytes) break;
                    var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, maxBytes + 1L));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                var read = await request.Body.ReadAsync(buffer.AsMemory(length, Math.Min(buffer.Length, maxBytes + 1) - length), cancellationToken);
                if (read == 0) break;
                length += read;
                if (length > maxBytes) break;
            }
            if (length > maxBytes)
            {
                ArrayPool<byte>.Shared.Return(buffer);
                return null;
            }
            return new RequestBody(buffer, length);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    /// <summary>A copy with bytes [start, start+length) replaced (an alias's model name swapped for its target).</summary>
    public RequestBody Replace(int start, int length, ReadOnlySpan<byte> replacement)
    {
        var source = Span;
        var total = source.Length - length + replacement.Length;
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, total));
        source[..start].CopyTo(buffer);
        replacement.CopyTo(buffer.AsSpan(start));
        source[(start + length)..].CopyTo(buffer.AsSpan(start + replacement.Length));
        return new RequestBody(buffer, total);
    }

    public void Dispose()
    {
        var b = Interlocked.Exchange(ref _buffer, null);
        if (b is not null) ArrayPool<byte>.Shared.Return(b);
    }
}
