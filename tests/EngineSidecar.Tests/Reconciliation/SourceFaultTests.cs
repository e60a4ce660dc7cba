using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;
using static HybridServing.EngineSidecar.Tests.Infrastructure.StateWaits;

namespace HybridServing.EngineSidecar.Tests.Reconciliation;

/// <summary>
/// Source failures mid-download, where the cache tests (truncated HTTP body, wrong digest, hangs: <c>ArtifactCacheTests</c>) stop
/// short: an S3 download whose connection is reset mid-body (s3rver behind a TCP proxy that sends RST after a few KB),
/// through the whole sidecar against a real MockEngine. Nothing partial reaches the engine or stays in the cache,
/// the retries back off, the status says why, and the adapter loads once the network heals.
/// </summary>
public sealed class SourceFaultTests(S3rverFixture s3, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<S3rverFixture>
{
    [Fact]
    public async Task An_S3_connection_reset_mid_download_loads_nothing_partial_backs_off_says_why_and_heals()
    {
        using var dir = new TempDirectory("sf-s3");
        var src = TestAdapters.Write(dir.Path, "reset-a", rank: 16);
        var digest = await PeftAdapter.ComputeDigestAsync(Path.Combine(src, PeftAdapter.SafetensorsFileName));
        using (var client = new AmazonS3Client(new BasicAWSCredentials("S3RVER", "S3RVER"),
                   new AmazonS3Config { ServiceURL = s3.ServiceUrl.ToString(), ForcePathStyle = true, AuthenticationRegion = "us-east-1" }))
            foreach (var file in new[] { PeftAdapter.ConfigFileName, PeftAdapter.SafetensorsFileName })
                await client.PutObjectAsync(new PutObjectRequest
                {
                    BucketName = S3rverFixture.Bucket, Key = $"faults/reset-a/{file}", FilePath = Path.Combine(src, file), UseChunkEncoding = false,
                });
        var safetensorsBytes = new FileInfo(Path.Combine(src, PeftAdapter.SafetensorsFileName)).Length;
        await using var proxy = new CountingTcpProxy(s3.ServiceUrl);
        // Small answers (listing, the config) pass; the weights are cut after 4 KB of every answer.
        proxy.ResetAfter(4096);
        Assert.True(safetensorsBytes > 8192, $"the weights ({safetensorsBytes} bytes) must be larger than what gets through");

        var secret = Directory.CreateDirectory(dir.Combine("secret")).FullName;
        File.WriteAllText(Path.Combine(secret, "aws_access_key_id"), "S3RVER");
        File.WriteAllText(Path.Combine(secret, "aws_secret_access_key"), "S3RVER");
        await using var engine = await MockEngineHost.StartAsync("--model", "test/tiny", "--enable-lora", "--max-lora-rank", "16");
        var settings = SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"));
        settings["Sidecar:S3:ServiceUrl"] = proxy.Url.ToString();
        settings["Sidecar:S3:ForcePathStyle"] = "true";
        settings["Sidecar:S3:Region"] = "us-east-1";
        settings["Sidecar:S3:CredentialsDirectory"] = secret;
        await using var host = await SidecarHost.StartAsync(settings);

        // Each failed attempt is a new Failed record (its own update time); count them as they happen.
        var failedAt = new HashSet<Google.Protobuf.WellKnownTypes.Timestamp>();
        AdapterStatus? failed = null;
        var watching = host.WaitForStateAsync(s =>
        {
            if (s.Adapter("reset-a") is { Phase: AdapterPhase.Failed } a && failedAt.Add(a.Updated)) failed = a;
            return failedAt.Count >= 3;
        }, TimeSpan.FromSeconds(60), "three failed download attempts");
        var started = DateTime.UtcNow;
        await host.Client.LoadAsync(new LoadRequest { Adapter = Spec("reset-a", $"s3://{S3rverFixture.Bucket}/faults/reset-a", digest) });
        await watching;
        var window = DateTime.UtcNow - started;

        Assert.Equal("DownloadFailed", failed!.Reason);
        output.WriteLine($"after {window.TotalSeconds:0.0} s: {failed.Reason}: {failed.Message}; proxy resets {proxy.Resets}, connections {proxy.Connections}");
        Assert.True(proxy.Resets >= 3, $"{proxy.Resets} resets");
        // Backoff (1 s, then 2 s) between the sidecar's attempts: three failures take at least the first two waits.
        Assert.True(window >= TimeSpan.FromSeconds(3), $"three attempts in {window.TotalSeconds:0.0} s: the sidecar did not back off");
        // Nothing partial: the engine never saw the adapter, the cache kept no file of it.
        Assert.DoesNotContain("reset-a", await EngineModelsAsync(engine.BaseUrl));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dir.Combine("cache"), "tmp")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(dir.Combine("cache"), "artifacts")));

        // The network heals: the next attempt downloads the whole object, verifies it and loads it.
        proxy.ResetAfter(null);
        var loaded = await host.WaitForPhaseAsync("reset-a", AdapterPhase.Loaded, TimeSpan.FromSeconds(90));
        Assert.Equal(digest, loaded.Adapter("reset-a")!.Digest);
        Assert.Contains("reset-a", await EngineModelsAsync(engine.BaseUrl));
    }

    private static async Task<string> EngineModelsAsync(Uri engine)
    {
        using var http = new HttpClient { BaseAddress = engine, Timeout = TimeSpan.FromSeconds(5) };
        return await http.GetStringAsync("v1/models");
    }
}
