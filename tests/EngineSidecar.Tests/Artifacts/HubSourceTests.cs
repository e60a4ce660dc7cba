using HybridServing.EngineSidecar.Artifacts;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;

namespace HybridServing.EngineSidecar.Tests.Artifacts;

/// <summary>hf:// sources against a local server with the Hub's URL layout ({repo}/resolve/{revision}/{file}).</summary>
public sealed class HubSourceTests
{
    [Fact]
    public async Task Downloads_by_repo_revision_and_subfolder_with_the_token()
    {
        using var dir = new TempDirectory("hub");
        await using var hub = await ArtifactServer.StartAsync();
        hub.AddAdapter("org/adapters/resolve/refs/pr/3/sql", TestAdapters.Write(dir.Path, "sql"));
        hub.AddAdapter("org/food/resolve/main", TestAdapters.Write(dir.Path, "food"));
        var (cache, _) = ArtifactCacheTests.NewCache(dir.Combine("cache"), hub: new HubSettings(hub.BaseUrl, "hf_secret", "main"));

        var sql = await cache.ResolveAsync(AdapterSource.Parse("hf://org/adapters/sql@refs/pr/3"), null, (_, _) => { }, CancellationToken.None);
        var food = await cache.ResolveAsync(AdapterSource.Parse("org/food"), null, (_, _) => { }, CancellationToken.None);
        Assert.Equal(8, sql.Info.Rank);
        Assert.NotEqual(sql.Digest, food.Digest);
        Assert.All(hub.Authorizations, a => Assert.Equal("Bearer hf_secret", a));
        Assert.Equal(1, hub.Hits["org/adapters/resolve/refs/pr/3/sql/adapter_model.safetensors"]);

        var missing = await Assert.ThrowsAsync<ArtifactException>(() =>
            cache.ResolveAsync(AdapterSource.Parse("hf://org/none"), null, (_, _) => { }, CancellationToken.None));
        Assert.Equal(FailureReasons.NotFound, missing.Reason);
    }

    [Fact]
    public async Task The_token_is_not_forwarded_when_the_hub_redirects_to_a_cdn()
    {
        using var dir = new TempDirectory("hub-cdn");
        var src = TestAdapters.Write(dir.Path, "cdn");
        await using var hub = await ArtifactServer.StartAsync();
        await using var cdn = await ArtifactServer.StartAsync();
        hub.AddAdapter("org/cdn/resolve/main", src);
        cdn.AddAdapter("blobs/cdn", src);
        hub.Redirects["org/cdn/resolve/main/adapter_model.safetensors"] = new Uri(cdn.BaseUrl, "blobs/cdn/adapter_model.safetensors");
        var (cache, _) = ArtifactCacheTests.NewCache(dir.Combine("cache"), hub: new HubSettings(hub.BaseUrl, "hf_secret", "main"));
        var artifact = await cache.ResolveAsync(AdapterSource.Parse("hf://org/cdn"), null, (_, _) => { }, CancellationToken.None);
        Assert.Equal(8, artifact.Info.Rank);
        Assert.Equal(1, cdn.Hits["blobs/cdn/adapter_model.safetensors"]);
        Assert.All(cdn.Authorizations, a => Assert.Null(a));
        Assert.Contains("Bearer hf_secret", hub.Authorizations);
    }

    [Fact]
    public async Task A_hub_announced_sha256_that_does_not_match_fails_the_download()
    {
        using var dir = new TempDirectory("hub-etag");
        await using var hub = await ArtifactServer.StartAsync();
        hub.AddAdapter("org/x/resolve/main", TestAdapters.Write(dir.Path, "x"));
        hub.Headers["X-Linked-Etag"] = "\"" + new string('b', 64) + "\"";
        var (cache, _) = ArtifactCacheTests.NewCache(dir.Combine("cache"), hub: new HubSettings(hub.BaseUrl, null, "main"));
        var e = await Assert.ThrowsAsync<ArtifactException>(() => cache.ResolveAsync(AdapterSource.Parse("hf://org/x"), null, (_, _) => { }, CancellationToken.None));
        Assert.Equal(FailureReasons.DigestMismatch, e.Reason);
        Assert.Contains("the Hub announced bbbb", e.Message);
    }

    [Fact]
    public async Task The_token_is_never_sent_over_plain_http_to_a_remote_host()
    {
        using var dir = new TempDirectory("hub-plain");
        var (cache, _) = ArtifactCacheTests.NewCache(dir.Combine("cache"), hub: new HubSettings(new Uri("http://hub.example.invalid/"), "hf_secret", "main"));
        var e = await Assert.ThrowsAsync<ArtifactException>(() => cache.ResolveAsync(AdapterSource.Parse("hf://org/x"), null, (_, _) => { }, CancellationToken.None));
        Assert.Equal(FailureReasons.Unauthorized, e.Reason);
        Assert.Contains("plain HTTP", e.Message);
        Assert.DoesNotContain("hf_secret", e.Message);
    }

    [Fact]
    public void Settings_come_from_configuration_then_the_hubs_environment_variables()
    {
        using var dir = new TempDirectory("hub-env");
        var tokenFile = dir.Combine("token");
        File.WriteAllText(tokenFile, "hf_from_file\n");
        var env = new Dictionary<string, string> { ["HF_ENDPOINT"] = "https://hub.internal/", ["HF_TOKEN_PATH"] = tokenFile };
        var fromEnv = HubSettings.From(new HubOptions(), n => env.GetValueOrDefault(n));
        Assert.Equal(new Uri("https://hub.internal/"), fromEnv.Endpoint);
        Assert.Equal("hf_from_file", fromEnv.Token);
        Assert.DoesNotContain("hf_from_file", fromEnv.ToString());
        env["HF_TOKEN"] = "hf_env";
        Assert.Equal("hf_env", HubSettings.From(new HubOptions(), n => env.GetValueOrDefault(n)).Token);
        var configured = HubSettings.From(new HubOptions { Endpoint = "https://mirror/", Token = "hf_cfg", DefaultRevision = "v2" }, n => env.GetValueOrDefault(n));
        Assert.Equal(("https://mirror/", "hf_cfg", "v2"), (configured.Endpoint.ToString(), configured.Token, configured.DefaultRevision));
        Assert.Equal(new Uri("https://huggingface.co/"), HubSettings.From(new HubOptions(), _ => null).Endpoint);
        Assert.Equal("https://h/org/r/resolve/refs%2Fpr%2F1/sub/adapter_config.json",
            HubArtifactFetcher.FileUrl(new Uri("https://h/"), "org/r", "refs/pr/1", "sub", "adapter_config.json").ToString());
    }
}
