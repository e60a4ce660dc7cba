using System.Security.Cryptography;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Sources;
using HybridServing.TestKit;
using Microsoft.AspNetCore.Http;

namespace HybridServing.ControlPlane.Tests.Sources;

/// <summary><c>type: huggingface</c> against a local Kestrel server with the Hub's URL layout (tree API + resolve with ranges).</summary>
public sealed class HubAdapterDiscoveryTests : IAsyncLifetime, IDisposable
{
    private readonly TempDirectory _dir = new("hubdisc");
    private readonly SourceHttp _http = new(TimeSpan.FromSeconds(5));
    private ArtifactServer _hub = null!;

    public async Task InitializeAsync() => _hub = await ArtifactServer.StartAsync();

    public async Task DisposeAsync() => await _hub.DisposeAsync();

    public void Dispose()
    {
        _http.Dispose();
        _dir.Dispose();
    }

    private void Publish(string repo, string revision, string folder, byte[] config, byte[]? weights)
    {
        var root = $"{repo}/resolve/{revision}/" + (folder.Length > 0 ? folder + "/" : "");
        _hub.Files[root + PeftAdapter.ConfigFileName] = config;
        if (weights is not null) _hub.Files[root + PeftAdapter.SafetensorsFileName] = weights;
    }

    private static DiscoveryRequest Request(string repo, string? revision = null, string? secret = null, IList<string>? adapters = null) =>
        new(new AdapterSource { Type = AdapterSourceTypes.HuggingFace, Repository = repo, Revision = revision, Adapters = adapters }, null, secret);

    private HubAdapterDiscovery Discovery(string? secrets = null, Dictionary<string, string>? environment = null, TimeSpan? timeout = null, SourceHttp? http = null) =>
        RemoteFixtures.Hub(RemoteFixtures.Options(timeout: timeout, secrets: secrets, hub: _hub.BaseUrl.ToString()), http ?? _http, environment);

    [Fact]
    public async Task Lists_subfolder_adapters_of_a_revision_with_the_LFS_digest_and_only_header_bytes()
    {
        var big = RemoteFixtures.Safetensors(4 << 20, rank: 16);
        Publish("org/adapters", "refs/pr/3", "sql", RemoteFixtures.Config(16), big);
        Publish("org/adapters", "refs/pr/3", "chat", RemoteFixtures.Config(8, "o_proj"), RemoteFixtures.Safetensors(8192));
        _hub.Files["org/adapters/resolve/refs/pr/3/README.md"] = "# adapters"u8.ToArray();
        _hub.TreePageSize = 2; // the listing comes in several pages, linked like the Hub's
        var secrets = RemoteFixtures.Secret(_dir.Combine("secrets"), "hf", new() { ["HF_TOKEN"] = "hf_secret_value" });

        var result = await Discovery(secrets).DiscoverAsync(Request("org/adapters", "refs/pr/3", secret: "hf"), CancellationToken.None);

        Assert.Null(result.SourceError);
        Assert.Empty(result.Failures);
        Assert.Equal(["chat", "sql"], result.Adapters.Select(a => a.Name));
        var sql = result.Adapters.Single(a => a.Name == "sql");
        Assert.Equal("hf://org/adapters/sql@refs/pr/3", sql.Uri);
        Assert.Equal(16, sql.Rank);
        Assert.Equal(big.Length, sql.SizeBytes);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(big)), sql.Digest);
        Assert.Equal(["o_proj"], result.Adapters.Single(a => a.Name == "chat").TargetModules);
        // The token went to the (loopback) Hub with every request; the weights were read only as far as the header.
        Assert.All(_hub.Authorizations, a => Assert.Equal("Bearer hf_secret_value", a));
        var weightsServed = _hub.BytesServed["org/adapters/resolve/refs/pr/3/sql/adapter_model.safetensors"];
        Assert.True(weightsServed < 4096, $"{weightsServed} bytes of a {big.Length}-byte weights file were served.");
        Assert.Contains("bytes=0-7", _hub.Ranges);
        Assert.True(_hub.Hits.Keys.Count(k => k.StartsWith("api/models/", StringComparison.Ordinal)) >= 1);
    }

    [Fact]
    public async Task A_repository_with_the_adapter_at_its_root_is_one_adapter_named_after_the_repo()
    {
        Publish("org/food", "main", "", RemoteFixtures.Config(4), RemoteFixtures.Safetensors(2048, rank: 4));
        var result = await Discovery().DiscoverAsync(Request("org/food"), CancellationToken.None);
        var food = Assert.Single(result.Adapters);
        Assert.Equal(("food", "hf://org/food@main", 4), (food.Name, food.Uri, food.Rank));
        Assert.All(_hub.Authorizations, a => Assert.Null(a));
    }

    [Fact]
    public async Task A_server_that_ignores_ranges_is_cut_off_after_the_header()
    {
        var big = RemoteFixtures.Safetensors(8 << 20);
        Publish("org/big", "main", "", RemoteFixtures.Config(), big);
        _hub.IgnoreRanges = true;
        // Slow enough that the kernel's loopback buffers (megabytes) do not swallow the whole file before the client lets go.
        _hub.ChunkDelay = TimeSpan.FromMilliseconds(1);
        var result = await Discovery().DiscoverAsync(Request("org/big"), CancellationToken.None);
        Assert.Equal(big.Length, Assert.Single(result.Adapters).SizeBytes);
        var served = _hub.BytesServed.GetValueOrDefault("org/big/resolve/main/adapter_model.safetensors");
        Assert.True(served < big.Length / 4, $"{served} of {big.Length} bytes were sent before the client let go.");
        Assert.Equal(2, _hub.Hits["org/big/resolve/main/adapter_model.safetensors"]);
    }

    [Fact]
    public async Task Hostile_files_and_listings_fail_only_their_adapter()
    {
        Publish("org/mixed", "main", "good", RemoteFixtures.Config(), RemoteFixtures.Safetensors(2048));
        Publish("org/mixed", "main", "hostile", RemoteFixtures.Config(), RemoteFixtures.HostileLength());
        Publish("org/mixed", "main", "huge-header", RemoteFixtures.Config(),
            RemoteFixtures.WithHeader(new byte[16], 8_600_000, declaredLength: 8_500_000));
        Publish("org/mixed", "main", "bad-json", "{not json"u8.ToArray(), RemoteFixtures.Safetensors(2048));
        Publish("org/mixed", "main", "no-weights", RemoteFixtures.Config(), null);
        _hub.Files["org/mixed/resolve/main/bad name/adapter_config.json"] = RemoteFixtures.Config();
        // The range answered is not the range asked for.
        Publish("org/mixed", "main", "liar", RemoteFixtures.Config(), RemoteFixtures.Safetensors(2048));
        _hub.Handlers["org/mixed/resolve/main/liar/adapter_model.safetensors"] = async context =>
        {
            context.Response.StatusCode = 206;
            context.Response.Headers.ContentRange = "bytes 100-107/2100";
            await context.Response.Body.WriteAsync(new byte[8]);
        };

        var result = await Discovery().DiscoverAsync(Request("org/mixed"), CancellationToken.None);

        Assert.Null(result.SourceError);
        Assert.Equal(["good"], result.Adapters.Select(a => a.Name));
        var f = result.Failures.ToDictionary(x => x.Name);
        Assert.Equal(LoraAdapterReasons.InvalidAdapter, f["hostile"].Reason);
        Assert.Contains("exceeds the file size", f["hostile"].Message);
        Assert.Equal(LoraAdapterReasons.InvalidAdapter, f["huge-header"].Reason);
        Assert.Contains("remote LoRA adapter's header", f["huge-header"].Message);
        Assert.True(_hub.BytesServed.GetValueOrDefault("org/mixed/resolve/main/huge-header/adapter_model.safetensors") < 1024);
        Assert.Equal(LoraAdapterReasons.InvalidAdapter, f["bad-json"].Reason);
        Assert.Contains("not valid JSON", f["bad-json"].Message);
        Assert.Equal(LoraAdapterReasons.AdapterNotFound, f["no-weights"].Reason);
        Assert.Equal(LoraAdapterReasons.InvalidAdapter, f["bad name"].Reason);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, f["liar"].Reason);
        Assert.Contains("for a range starting at 0", f["liar"].Message);
    }

    [Fact]
    public async Task A_listing_with_traversal_paths_or_a_next_page_on_another_host_is_refused()
    {
        _hub.Handlers["api/models/org/evil/tree/main"] = context => context.Response.WriteAsync(
            """[{"type":"file","path":"../other/adapter_config.json","size":10},{"type":"file","path":"x/../../adapter_config.json","size":10}]""");
        var traversal = await Discovery().DiscoverAsync(Request("org/evil"), CancellationToken.None);
        Assert.Null(traversal.SourceError);
        Assert.Empty(traversal.Adapters);
        Assert.DoesNotContain(_hub.Hits.Keys, k => k.Contains("other", StringComparison.Ordinal));

        _hub.Handlers["api/models/org/paged/tree/main"] = context =>
        {
            context.Response.Headers["Link"] = "<https://elsewhere.example/api/models/org/paged/tree/main?cursor=1>; rel=\"next\"";
            return context.Response.WriteAsync("[]");
        };
        var offHost = await Discovery().DiscoverAsync(Request("org/paged"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, offHost.SourceErrorReason);
        Assert.Contains("another host", offHost.SourceError);

        _hub.Handlers["api/models/org/notjson/tree/main"] = context => context.Response.WriteAsync("{\"error\":1}");
        var notArray = await Discovery().DiscoverAsync(Request("org/notjson"), CancellationToken.None);
        Assert.Contains("not a JSON array", notArray.SourceError);
    }

    [Fact]
    public async Task Missing_or_refused_credentials_and_bad_specs()
    {
        _hub.Handlers["api/models/org/private/tree/main"] = context => { context.Response.StatusCode = 401; return Task.CompletedTask; };
        var anonymous = await Discovery().DiscoverAsync(Request("org/private"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.CredentialsMissing, anonymous.SourceErrorReason);

        var withToken = await Discovery(environment: new() { ["HF_TOKEN"] = "hf_wrong" }).DiscoverAsync(Request("org/private"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, withToken.SourceErrorReason);
        Assert.Contains("refused", withToken.SourceError);
        Assert.DoesNotContain("hf_wrong", withToken.SourceError);
        Assert.Contains("Bearer hf_wrong", _hub.Authorizations);

        var secrets = RemoteFixtures.Secret(_dir.Combine("secrets"), "empty", new() { ["OTHER"] = "x" });
        var noKey = await Discovery(secrets).DiscoverAsync(Request("org/private", secret: "empty"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.CredentialsMissing, noKey.SourceErrorReason);
        Assert.Contains("HF_TOKEN", noKey.SourceError);
        var noSecret = await Discovery(secrets).DiscoverAsync(Request("org/private", secret: "absent"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.CredentialsMissing, noSecret.SourceErrorReason);

        var notFound = await Discovery().DiscoverAsync(Request("org/none"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, notFound.SourceErrorReason);
        Assert.Contains("no repository org/none", notFound.SourceError);

        Assert.Equal(LoraAdapterReasons.InvalidSpec, (await Discovery().DiscoverAsync(Request("just-a-name"), CancellationToken.None)).SourceErrorReason);
        Assert.Equal(LoraAdapterReasons.InvalidSpec, (await Discovery().DiscoverAsync(Request("org/x", revision: "a@b"), CancellationToken.None)).SourceErrorReason);
        Assert.Equal(LoraAdapterReasons.InvalidSpec, (await Discovery().DiscoverAsync(Request("org/x", revision: "refs/../main"), CancellationToken.None)).SourceErrorReason);
    }

    [Fact]
    public async Task The_token_never_travels_over_plain_http_to_a_remote_host()
    {
        var hits = _hub.Hits.Count;
        var discovery = RemoteFixtures.Hub(RemoteFixtures.Options(hub: "http://hub.example.invalid"), _http, new() { ["HF_TOKEN"] = "hf_secret" });
        var result = await discovery.DiscoverAsync(Request("org/x"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, result.SourceErrorReason);
        Assert.Contains("refusing to send the access token over plain HTTP", result.SourceError);
        Assert.Equal(hits, _hub.Hits.Count);
    }

    [Fact]
    public async Task Unreachable_and_silent_hubs_are_SourceUnavailable_within_the_deadline()
    {
        var down = await RemoteFixtures.Hub(RemoteFixtures.Options(hub: $"http://127.0.0.1:{RemoteFixtures.ClosedPort()}"), _http)
            .DiscoverAsync(Request("org/x"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, down.SourceErrorReason);
        Assert.Contains("/api/models/org/x/tree/main", down.SourceError);

        using var http = new SourceHttp(TimeSpan.FromMilliseconds(300));
        _hub.Behaviour["org/slow/resolve/main/adapter_config.json"] = Misbehaviour.Hang;
        Publish("org/slow", "main", "", RemoteFixtures.Config(), RemoteFixtures.Safetensors(1024));
        var slow = await Discovery(http: http).DiscoverAsync(Request("org/slow"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, slow.SourceErrorReason);
        Assert.Contains("timed out after 0.3 s", slow.SourceError);
    }

    [Fact]
    public void The_endpoint_is_configuration_then_HF_ENDPOINT_then_the_public_Hub()
    {
        Assert.Equal("https://mirror.example/", RemoteFixtures.Hub(RemoteFixtures.Options(hub: "https://mirror.example"), _http, new() { ["HF_ENDPOINT"] = "https://env.example" }).Endpoint.ToString());
        Assert.Equal("https://env.example/", RemoteFixtures.Hub(RemoteFixtures.Options(), _http, new() { ["HF_ENDPOINT"] = "https://env.example" }).Endpoint.ToString());
        Assert.Equal("https://huggingface.co/", RemoteFixtures.Hub(RemoteFixtures.Options(), _http).Endpoint.ToString());
    }
}
