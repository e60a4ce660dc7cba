using System.Buffers;

namespace HybridServing.EngineSidecar.Artifacts;

/// <summary>
/// Limits for one artifact download, shared by its files: a byte ceiling, an idle timeout (a server that
/// sends nothing for that long is dropped, so a hung or slow-loris server cannot hold a reconcile forever),
/// and a progress callback for WatchState's Downloading phase.
/// </summary>
internal sealed class DownloadBudget(long maxBytes, TimeSpan idleTimeout, Action<long, long?> progress)
{
    private long _total;
    private long? _expectedTotal;

    public long MaxBytes { get; } = maxBytes;
    public TimeSpan IdleTimeout { get; } = idleTimeout;
    public long BytesDownloaded => Interlocked.Read(ref _total);

    /// <summary>Adds a file's announced length to the expected total and fails early when it cannot fit.</summary>
    public void Announce(string what, long? length)
    {
        if (length is not { } n) return;
        if (BytesDownloaded + n > MaxBytes)
            throw new ArtifactException(FailureReasons.TooLarge,
                $"{what} is {n} bytes; with what is already downloaded that exceeds the artifact limit of {MaxBytes} bytes (Sidecar:Artifacts:MaxBytes).");
        _expectedTotal = (_expectedTotal ?? 0) + n;
        progress(BytesDownloaded, _expectedTotal);
    }

    /// <summary>Runs <paramref name="action"/> with a token that fires after <see cref="IdleTimeout"/>,
    /// mapping that expiry to a DownloadTimeout failure.</summary>
    public async Task<T> WithIdleTimeoutAsync<T>(string what, Func<CancellationToken, Task<T>> action, CancellationToken cancellationToken)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        idle.CancelAfter(IdleTimeout);
        try
        {
            return await action(idle.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ArtifactException(FailureReasons.DownloadTimeout,
                $"{what}: no response within {IdleTimeout.TotalSeconds:0.###} s (Sidecar:Artifacts:IdleTimeoutSeconds).");
        }
    }

    /// <summary>Copies <paramref name="source"/> to a new file, enforcing the byte ceiling and the idle timeout per read.</summary>
    public async Task<long> CopyToFileAsync(string what, Stream source, string path, long? expectedLength, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        long written = 0;
        try
        {
            await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            while (true)
            {
                idle.CancelAfter(IdleTimeout);
                int read;
                try
                {
                    read = await source.ReadAsync(buffer.AsMemory(), idle.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new ArtifactException(FailureReasons.DownloadTimeout,
                        $"{what}: the server sent nothing for {IdleTimeout.TotalSeconds:0.###} s after {written} bytes (Sidecar:Artifacts:IdleTimeoutSeconds).");
                }
                catch (IOException e)
                {
                    throw new ArtifactException(FailureReasons.DownloadFailed, $"{what}: the transfer broke off after {written} bytes: {e.Message}", e);
                }
                if (read == 0) break;
                written += read;
                var total = Interlocked.Add(ref _total, read);
                if (total > MaxBytes)
                    throw new ArtifactException(FailureReasons.TooLarge,
                        $"{what}: the artifact exceeds the limit of {MaxBytes} bytes (Sidecar:Artifacts:MaxBytes).");
                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                progress(total, _expectedTotal);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        if (expectedLength is { } n && n != written)
            throw new ArtifactException(FailureReasons.DownloadFailed, $"{what}: truncated transfer, {written} of {n} bytes received.");
        return written;
    }
}

/// <summary>Fetches the PEFT files of one source kind into a staging directory.</summary>
internal interface IArtifactFetcher
{
    AdapterSourceKind Kind { get; }

    /// <summary>Writes <c>adapter_config.json</c> and <c>adapter_model.safetensors</c> into <paramref name="directory"/>.</summary>
    Task FetchAsync(AdapterSource source, string directory, DownloadBudget budget, CancellationToken cancellationToken);
}
