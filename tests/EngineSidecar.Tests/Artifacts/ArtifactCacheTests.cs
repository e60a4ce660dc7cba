using HybridServing.Contracts.Peft;
using HybridServing.EngineSidecar.Artifacts;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Telemetry;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;

namespace HybridServing.EngineSidecar.Tests.Artifacts;

public sealed class ArtifactCacheTests
{
    internal static (ArtifactCache Cache, SidecarMetrics Metrics) NewCache(string cacheDir, long budget = 1L << 30, long maxBytes = 1L << 30,
        double idleSeconds = 10, HubSettings? hub = null, S3Options? s3 = null, Func<string, string?>? environment = null)
    {
        var options = new SidecarOptions
        {
            CacheDirectory = cacheDir,
            CacheBudgetBytes = budget,
            Artifacts = new ArtifactOptions { MaxBytes = maxBytes, IdleTimeoutSeconds = idleSeconds, DownloadTimeoutSeconds = 10 },
        };
        var downloader = new HttpFileDownloader(new PlainHttpClientFactory());
        var metrics = new SidecarMetrics(Metrics.WithCustomRegistry(Metrics.NewCustomRegistry()));
        IArtifactFetcher[] fetchers =
        [
            new HttpArtifactFetcher(downloader),
            new HubArtifactFetcher(downloader, hub ?? new HubSettings(new Uri("http://127.0.0.1:1/"), null, "main"), new SourceCredentials(null)),
            new S3ArtifactFetcher(s3 ?? new S3Options(), environment ?? (_ => null), new SourceCredentials(null)),
        ];
        return (new ArtifactCache(options, new LocalPathPolicy([]), fetchers, metrics, TimeProvider.System, NullLogger<ArtifactCache>.Instance), metrics);
    }

    private static readonly Action<long, long?> NoProgress = (_, _) => { };

    [Fact]
    public async Task Http_download_is_validated_verified_and_cached_by_content()
    {
        using var dir = new TempDirectory("ac-http");
        var adapter = TestAdapters.Write(dir.Path, "src");
        var digest = await PeftAdapter.ComputeDigestAsync(Path.Combine(adapter, PeftAdapter.SafetensorsFileName));
        await using var server = await ArtifactServer.StartAsync();
        server.AddAdapter("adapters/a", adapter);
        var (cache, metrics) = NewCache(dir.Combine("cache"));
        var progress = new List<(long, long?)>();

        var first = await cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "adapters/a"), digest, (d, t) => { lock (progress) progress.Add((d, t)); }, CancellationToken.None);
        Assert.True(first.Downloaded);
        Assert.Equal(digest, first.Digest);
        Assert.Equal(Path.Combine(cache.Root, "artifacts", digest), first.Path);
        Assert.Equal(8, first.Info.Rank);
        Assert.NotEmpty(progress);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(cache.Root, "tmp")));

        // Second time: by digest, and without a digest through the source index: no new requests.
        var second = await cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "adapters/a/"), digest, NoProgress, CancellationToken.None);
        var third = await cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "adapters/a"), null, NoProgress, CancellationToken.None);
        Assert.False(second.Downloaded);
        Assert.False(third.Downloaded);
        Assert.Equal(1, server.Hits["adapters/a/adapter_model.safetensors"]);
        Assert.True(metrics.BytesDownloaded.WithLabels("http").Value > 0);
        Assert.Equal(2, metrics.CacheHits.Value);
    }

    [Fact]
    public async Task Concurrent_requests_for_one_artifact_share_one_download()
    {
        using var dir = new TempDirectory("ac-share");
        var adapter = TestAdapters.Write(dir.Path, "src");
        await using var server = await ArtifactServer.StartAsync();
        server.AddAdapter("a", adapter);
        server.Behaviour["a/adapter_config.json"] = Misbehaviour.SlowStart;
        var (cache, _) = NewCache(dir.Combine("cache"));
        var source = AdapterSource.Parse(server.BaseUrl + "a");
        var results = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => cache.ResolveAsync(source, null, NoProgress, CancellationToken.None)));
        Assert.Single(results.Select(r => r.Path).Distinct());
        Assert.Equal(1, server.Hits["a/adapter_config.json"]);
        Assert.Equal(1, server.Hits["a/adapter_model.safetensors"]);
    }

    [Fact]
    public async Task A_wrong_digest_fails_and_leaves_nothing_in_the_cache()
    {
        using var dir = new TempDirectory("ac-digest");
        await using var server = await ArtifactServer.StartAsync();
        server.AddAdapter("a", TestAdapters.Write(dir.Path, "src"));
        var (cache, _) = NewCache(dir.Combine("cache"));
        var e = await Assert.ThrowsAsync<ArtifactException>(() =>
            cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "a"), new string('a', 64), NoProgress, CancellationToken.None));
        Assert.Equal(FailureReasons.DigestMismatch, e.Reason);
        Assert.Contains("expected aaaa", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(cache.Root, "artifacts")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(cache.Root, "tmp")));
    }

    [Theory]
    [InlineData(Misbehaviour.Truncate, "DownloadFailed")]
    [InlineData(Misbehaviour.HangMidway, "DownloadTimeout")]
    [InlineData(Misbehaviour.Hang, "DownloadTimeout")]
    [InlineData(Misbehaviour.Status500, "DownloadFailed")]
    [InlineData(Misbehaviour.Status403, "Unauthorized")]
    public async Task Misbehaving_servers_fail_with_a_reason_and_no_partial_file_is_kept(Misbehaviour behaviour, string reason)
    {
        using var dir = new TempDirectory("ac-bad");
        await using var server = await ArtifactServer.StartAsync();
        server.AddAdapter("a", TestAdapters.Write(dir.Path, "src"));
        server.Behaviour["a/adapter_model.safetensors"] = behaviour;
        // A short idle timeout only where the server hangs; elsewhere a loaded CI machine must not turn into a timeout.
        var hangs = behaviour is Misbehaviour.Hang or Misbehaviour.HangMidway;
        var (cache, _) = NewCache(dir.Combine("cache"), idleSeconds: hangs ? 1.5 : 10);
        var started = DateTime.UtcNow;
        var e = await Assert.ThrowsAsync<ArtifactException>(() =>
            cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "a"), null, NoProgress, CancellationToken.None));
        Assert.Equal(reason, e.Reason);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(8), "timeouts must be bounded");
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(cache.Root, "artifacts")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(cache.Root, "tmp")));
    }

    [Fact]
    public async Task Artifacts_above_the_size_limit_are_refused_before_they_are_read()
    {
        using var dir = new TempDirectory("ac-size");
        await using var server = await ArtifactServer.StartAsync();
        server.AddAdapter("a", TestAdapters.Write(dir.Path, "src"));
        var (cache, _) = NewCache(dir.Combine("cache"), maxBytes: 2000);
        var e = await Assert.ThrowsAsync<ArtifactException>(() =>
            cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "a"), null, NoProgress, CancellationToken.None));
        Assert.Equal(FailureReasons.TooLarge, e.Reason);
        Assert.Contains("Sidecar:Artifacts:MaxBytes", e.Message);
    }

    [Fact]
    public async Task Hostile_safetensors_and_missing_files_are_rejected_before_the_engine_sees_them()
    {
        using var dir = new TempDirectory("ac-hostile");
        var src = TestAdapters.Write(dir.Path, "src");
        await using var server = await ArtifactServer.StartAsync();
        server.AddAdapter("huge-header", src);
        var weights = File.ReadAllBytes(Path.Combine(src, PeftAdapter.SafetensorsFileName));
        BitConverter.TryWriteBytes(weights.AsSpan(0, 8), (ulong)long.MaxValue);
        server.Files["huge-header/adapter_model.safetensors"] = weights;
        server.AddAdapter("short", src);
        server.Files["short/adapter_model.safetensors"] = File.ReadAllBytes(Path.Combine(src, PeftAdapter.SafetensorsFileName))[..200];
        server.AddAdapter("noweights", src);
        server.Files.TryRemove("noweights/adapter_model.safetensors", out _);
        var (cache, _) = NewCache(dir.Combine("cache"));

        var header = await Assert.ThrowsAsync<ArtifactException>(() => cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "huge-header"), null, NoProgress, CancellationToken.None));
        Assert.Equal(FailureReasons.InvalidAdapter, header.Reason);
        Assert.Contains("header length", header.Message);
        var truncated = await Assert.ThrowsAsync<ArtifactException>(() => cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "short"), null, NoProgress, CancellationToken.None));
        Assert.Equal(FailureReasons.InvalidAdapter, truncated.Reason);
        var missing = await Assert.ThrowsAsync<ArtifactException>(() => cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "noweights"), null, NoProgress, CancellationToken.None));
        Assert.Equal(FailureReasons.NotFound, missing.Reason);
    }

    [Fact]
    public async Task Over_budget_the_least_recently_used_unloaded_artifact_is_evicted()
    {
        using var dir = new TempDirectory("ac-lru");
        await using var server = await ArtifactServer.StartAsync();
        foreach (var n in new[] { "a", "b", "c" }) server.AddAdapter(n, TestAdapters.Write(dir.Path, "src-" + n));
        var one = Directory.EnumerateFiles(Path.Combine(dir.Path, "src-a")).Sum(f => new FileInfo(f).Length);
        var (cache, metrics) = NewCache(dir.Combine("cache"), budget: one * 2 + one / 2);
        var a = await cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "a"), null, NoProgress, CancellationToken.None);
        var b = await cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "b"), null, NoProgress, CancellationToken.None);
        cache.SetInUse([a.Digest]);
        await Task.Delay(20);
        var c = await cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "c"), null, NoProgress, CancellationToken.None);
        Assert.True(Directory.Exists(a.Path), "in use: kept although least recently used");
        Assert.False(Directory.Exists(b.Path), "not in use and least recently used: evicted");
        Assert.True(Directory.Exists(c.Path));
        Assert.Equal(1, metrics.CacheEvictions.Value);
        Assert.True(cache.UsedBytes <= one * 2 + one / 2);
        // Evicted artifacts download again on demand.
        var again = await cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "b"), null, NoProgress, CancellationToken.None);
        Assert.True(again.Downloaded);
    }

    [Fact]
    public async Task An_artifact_larger_than_the_whole_budget_fails_as_cache_full()
    {
        using var dir = new TempDirectory("ac-full");
        await using var server = await ArtifactServer.StartAsync();
        server.AddAdapter("a", TestAdapters.Write(dir.Path, "src"));
        var (cache, _) = NewCache(dir.Combine("cache"), budget: 1000);
        var e = await Assert.ThrowsAsync<ArtifactException>(() => cache.ResolveAsync(AdapterSource.Parse(server.BaseUrl + "a"), null, NoProgress, CancellationToken.None));
        Assert.Equal(FailureReasons.CacheFull, e.Reason);
    }
}
