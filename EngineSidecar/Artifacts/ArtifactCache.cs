using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using HybridServing.Contracts.Peft;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Telemetry;
using Microsoft.Extensions.Logging;

namespace HybridServing.EngineSidecar.Artifacts;

/// <summary>A validated adapter directory the engine may be pointed at.</summary>
/// <param name="DownloadedBytes">Bytes transferred to produce it: 0 for cache hits and local paths.</param>
internal sealed record ResolvedArtifact(string Path, string Digest, PeftAdapterInfo Info, bool Downloaded, long DownloadedBytes = 0);

/// <summary>
/// Resolves adapter sources to validated local directories. Remote artifacts are downloaded into
/// <c>{CacheDirectory}/tmp/…</c>, validated (PEFT config, safetensors header, sha256), then renamed atomically
/// into <c>{CacheDirectory}/artifacts/{sha256 of the weights}</c>; a half-written download can therefore never be
/// mistaken for a cached artifact. Concurrent requests for one artifact share one download. The cache stays within
/// its budget by evicting least recently used artifacts that are not in use.
/// </summary>
internal sealed class ArtifactCache
{
    /// <summary>One in-flight download and everyone waiting for its progress.</summary>
    private sealed class Download
    {
        public Task<ResolvedArtifact> Task { get; set; } = null!;
        public readonly List<Action<long, long?>> Listeners = [];
    }

    private readonly SidecarOptions _options;
    private readonly LocalPathPolicy _localPaths;
    private readonly Dictionary<AdapterSourceKind, IArtifactFetcher> _fetchers;
    private readonly SidecarMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<ArtifactCache> _logger;
    private readonly ConcurrentDictionary<string, Download> _inflight = new();
    private readonly ConcurrentDictionary<string, string> _index = new();
    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastUse = new();
    private readonly SemaphoreSlim _downloadSlots;
    private readonly object _evictionLock = new();
    private volatile IReadOnlySet<string> _inUse = new HashSet<string>();
    private readonly CancellationTokenSource _lifetime = new();

    public ArtifactCache(SidecarOptions options, LocalPathPolicy localPaths, IEnumerable<IArtifactFetcher> fetchers,
        SidecarMetrics metrics, TimeProvider time, ILogger<ArtifactCache> logger)
    {
        _options = options;
        _localPaths = localPaths;
        _fetchers = fetchers.ToDictionary(f => f.Kind);
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _downloadSlots = new SemaphoreSlim(options.Artifacts.MaxConcurrentDownloads);
        Root = Path.GetFullPath(options.EffectiveCacheDirectory);
        Directory.CreateDirectory(ArtifactsDirectory);
        Directory.CreateDirectory(IndexDirectory);
        // Left-overs of downloads interrupted by a crash are never reused: a partial file is not an artifact.
        if (Directory.Exists(StagingDirectory)) Directory.Delete(StagingDirectory, recursive: true);
        Directory.CreateDirectory(StagingDirectory);
        metrics.CacheBudgetBytes.Set(options.CacheBudgetBytes);
        UpdateUsageMetrics();
    }

    public string Root { get; }
    private string ArtifactsDirectory => Path.Combine(Root, "artifacts");
    private string StagingDirectory => Path.Combine(Root, "tmp");
    private string IndexDirectory => Path.Combine(Root, "index");

    /// <summary>Digests the reconciler has loaded or is about to load: never evicted.</summary>
    public void SetInUse(IEnumerable<string> digests) => _inUse = digests.ToHashSet(StringComparer.Ordinal);

    /// <summary>Accepts a sha256 given by a caller: 64 hex digits, optionally prefixed <c>sha256:</c>.</summary>
    public static string? NormalizeDigest(string? sha256)
    {
        if (string.IsNullOrWhiteSpace(sha256)) return null;
        var d = sha256.Trim();
        if (d.StartsWith("sha256:", StringComparison.OrdinalIgnoreCase)) d = d[7..];
        if (d.Length != 64 || !d.All(Uri.IsHexDigit))
            throw new ArtifactException(FailureReasons.InvalidSource, $"The sha256 '{sha256}' is not 64 hexadecimal digits.");
        return d.ToLowerInvariant();
    }

    public async Task<ResolvedArtifact> ResolveAsync(AdapterSource source, string? sha256, Action<long, long?> progress, CancellationToken cancellationToken)
    {
        var digest = NormalizeDigest(sha256);
        if (source.Kind == AdapterSourceKind.Local)
            return await ResolveLocalAsync(source, digest, cancellationToken);

        if ((digest ?? (_index.TryGetValue(source.CacheKey, out var known) ? known : ReadIndex(source.CacheKey))) is { } cachedDigest
            && TryHit(cachedDigest) is { } hit)
            return hit;

        var key = source.CacheKey + "#" + digest;
        Download download;
        lock (_inflight)
        {
            if (!_inflight.TryGetValue(key, out download!))
            {
                var fresh = new Download();
                fresh.Listeners.Add(progress);
                // Registered before it starts, so its own clean-up always finds (and only removes) itself.
                _inflight[key] = fresh;
                fresh.Task = DownloadAsync(source, digest, fresh, key);
                download = fresh;
            }
            else
            {
                lock (download.Listeners) download.Listeners.Add(progress);
            }
        }
        return await download.Task.WaitAsync(cancellationToken);
    }

    private async Task<ResolvedArtifact> ResolveLocalAsync(AdapterSource source, string? digest, CancellationToken cancellationToken)
    {
        var path = _localPaths.Confine(source.LocalPath!);
        var info = ReadAdapter(path, source.Display);
        var actual = await PeftAdapter.ComputeDigestAsync(info.WeightsFile, cancellationToken);
        if (digest is not null && actual != digest)
            throw new ArtifactException(FailureReasons.DigestMismatch, $"{source.Display}: the weights have sha256 {actual}, expected {digest}.");
        return new ResolvedArtifact(path, actual, info, Downloaded: false);
    }

    private ResolvedArtifact? TryHit(string digest)
    {
        var dir = Path.Combine(ArtifactsDirectory, digest);
        if (!Directory.Exists(dir)) return null;
        try
        {
            var info = PeftAdapter.Read(dir);
            Touch(digest, dir);
            _metrics.CacheHits.Inc();
            return new ResolvedArtifact(dir, digest, info, Downloaded: false);
        }
        catch (PeftFormatException)
        {
            // Tampered or damaged on disk: drop it and download again.
            TryDelete(dir);
            return null;
        }
    }

    private async Task<ResolvedArtifact> DownloadAsync(AdapterSource source, string? digest, Download download, string key)
    {
        // Detach from the caller: a shared download must not be cancelled by the first requester going away.
        await Task.Yield();
        var kind = source.Kind.ToString().ToLowerInvariant();
        var staging = Path.Combine(StagingDirectory, Guid.NewGuid().ToString("N"));
        var stopwatch = Stopwatch.StartNew();
        var result = "failure";
        try
        {
            if (!_fetchers.TryGetValue(source.Kind, out var fetcher))
                throw new ArtifactException(FailureReasons.InvalidSource, $"No fetcher for {source.Kind} sources is configured.");
            await _downloadSlots.WaitAsync(_lifetime.Token);
            try
            {
                Directory.CreateDirectory(staging);
                var budget = new DownloadBudget(_options.Artifacts.MaxBytes, SidecarOptions.Seconds(_options.Artifacts.IdleTimeoutSeconds), (done, total) =>
                {
                    Action<long, long?>[] listeners;
                    lock (download.Listeners) listeners = [.. download.Listeners];
                    foreach (var l in listeners) l(done, total);
                });
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_lifetime.Token);
                deadline.CancelAfter(SidecarOptions.Seconds(_options.Artifacts.DownloadTimeoutSeconds));
                try
                {
                    await fetcher.FetchAsync(source, staging, budget, deadline.Token);
                }
                catch (OperationCanceledException) when (deadline.IsCancellationRequested && !_lifetime.IsCancellationRequested)
                {
                    throw new ArtifactException(FailureReasons.DownloadTimeout,
                        $"{source.Display}: the download did not finish within {_options.Artifacts.DownloadTimeoutSeconds} s (Sidecar:Artifacts:DownloadTimeoutSeconds).");
                }
                _metrics.BytesDownloaded.WithLabels(kind).Inc(budget.BytesDownloaded);

                var info = ReadAdapter(staging, source.Display);
                var actual = await PeftAdapter.ComputeDigestAsync(info.WeightsFile, _lifetime.Token);
                if (digest is not null && actual != digest)
                    throw new ArtifactException(FailureReasons.DigestMismatch, $"{source.Display}: the downloaded weights have sha256 {actual}, expected {digest}.");
                var size = DirectorySize(staging);
                if (size > _options.CacheBudgetBytes)
                    throw new ArtifactException(FailureReasons.CacheFull,
                        $"{source.Display}: the artifact is {size} bytes, larger than the whole cache budget of {_options.CacheBudgetBytes} bytes (Sidecar:CacheBudgetBytes).");

                var final = Path.Combine(ArtifactsDirectory, actual);
                try
                {
                    Directory.Move(staging, final);
                }
                catch (IOException) when (Directory.Exists(final))
                {
                    // The same content arrived through another source meanwhile; keep the first.
                }
                WriteIndex(source.CacheKey, actual);
                Touch(actual, final);
                EnforceBudget(protect: actual);
                result = "success";
                Log.Downloaded(_logger, source.Display, budget.BytesDownloaded, actual, stopwatch.ElapsedMilliseconds);
                return new ResolvedArtifact(final, actual, PeftAdapter.Read(final), Downloaded: true, budget.BytesDownloaded);
            }
            finally
            {
                _downloadSlots.Release();
            }
        }
        finally
        {
            _metrics.DownloadDuration.WithLabels(kind, result).Observe(stopwatch.Elapsed.TotalSeconds);
            if (Directory.Exists(staging)) TryDelete(staging);
            _inflight.TryRemove(new KeyValuePair<string, Download>(key, download));
        }
    }

    private static PeftAdapterInfo ReadAdapter(string dir, string source)
    {
        try
        {
            return PeftAdapter.Read(dir);
        }
        catch (PeftNotFoundException)
        {
            throw new ArtifactException(FailureReasons.NotFound, $"No adapter found for {source} (no adapter_config.json with adapter_model.safetensors).");
        }
        catch (PeftFormatException e)
        {
            throw new ArtifactException(FailureReasons.InvalidAdapter, $"{source}: {e.Message}");
        }
        catch (IOException e)
        {
            throw new ArtifactException(FailureReasons.InvalidAdapter, $"{source}: cannot read the adapter files: {e.Message}");
        }
    }

    private void Touch(string digest, string dir)
    {
        var now = _time.GetUtcNow();
        _lastUse[digest] = now;
        try { Directory.SetLastWriteTimeUtc(dir, now.UtcDateTime); }
        catch (IOException) { }
    }

    /// <summary>Evicts least recently used artifacts that are not in use until the cache fits its budget.</summary>
    internal void EnforceBudget(string? protect = null)
    {
        lock (_evictionLock)
        {
            var entries = Directory.EnumerateDirectories(ArtifactsDirectory)
                .Select(d => (Dir: d, Digest: Path.GetFileName(d), Size: DirectorySize(d),
                    LastUse: _lastUse.TryGetValue(Path.GetFileName(d), out var t) ? t : new DateTimeOffset(Directory.GetLastWriteTimeUtc(d), TimeSpan.Zero)))
                .OrderBy(e => e.LastUse)
                .ToList();
            var total = entries.Sum(e => e.Size);
            var inUse = _inUse;
            foreach (var e in entries)
            {
                if (total <= _options.CacheBudgetBytes) break;
                if (e.Digest == protect || inUse.Contains(e.Digest)) continue;
                if (TryDelete(e.Dir))
                {
                    total -= e.Size;
                    _lastUse.TryRemove(e.Digest, out _);
                    _metrics.CacheEvictions.Inc();
                    Log.Evicted(_logger, e.Digest, e.Size);
                }
            }
            if (total > _options.CacheBudgetBytes) Log.CacheOverBudget(_logger, total, _options.CacheBudgetBytes);
            UpdateUsageMetrics();
        }
    }

    private void UpdateUsageMetrics()
    {
        var dirs = Directory.EnumerateDirectories(ArtifactsDirectory).ToList();
        _metrics.CacheArtifacts.Set(dirs.Count);
        _metrics.CacheBytes.Set(dirs.Sum(DirectorySize));
    }

    public long UsedBytes => Directory.EnumerateDirectories(ArtifactsDirectory).Sum(DirectorySize);

    private static long DirectorySize(string dir) =>
        new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);

    private static string IndexKey(string cacheKey) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(cacheKey)));

    private string? ReadIndex(string cacheKey)
    {
        var path = Path.Combine(IndexDirectory, IndexKey(cacheKey));
        if (!File.Exists(path)) return null;
        var digest = File.ReadAllText(path).Trim();
        if (digest.Length != 64 || !digest.All(Uri.IsHexDigit)) return null;
        _index[cacheKey] = digest;
        return digest;
    }

    private void WriteIndex(string cacheKey, string digest)
    {
        _index[cacheKey] = digest;
        var path = Path.Combine(IndexDirectory, IndexKey(cacheKey));
        var tmp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        File.WriteAllText(tmp, digest);
        File.Move(tmp, path, overwrite: true);
    }

    private static bool TryDelete(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
            return true;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    public void Stop() => _lifetime.Cancel();
}
