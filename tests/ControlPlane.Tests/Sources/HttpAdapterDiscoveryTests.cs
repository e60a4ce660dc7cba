using System.Security.Cryptography;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Sources;
using HybridServing.TestKit;

namespace HybridServing.ControlPlane.Tests.Sources;

/// <summary><c>type: http</c> against a real Kestrel file server with ranges.</summary>
public sealed class HttpAdapterDiscoveryTests : IAsyncLifetime, IDisposable
{
    private readonly TempDirectory _dir = new("httpdisc");
    private readonly SourceHttp _http = new(TimeSpan.FromSeconds(5));
    private ArtifactServer _server = null!;

    public async Task InitializeAsync() => _server = await ArtifactServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    public void Dispose()
    {
        _http.Dispose();
        _dir.Dispose();
    }

    private void Publish(string path, byte[] config, byte[]? weights)
    {
        _server.Files[$"{path}/{PeftAdapter.ConfigFileName}"] = config;
        if (weights is not null) _server.Files[$"{path}/{PeftAdapter.SafetensorsFileName}"] = weights;
    }

    private HttpAdapterDiscovery Discovery(SourceHttp? http = null, string? secrets = null) =>
        RemoteFixtures.Http(RemoteFixtures.Options(secrets: secrets), http ?? _http);

    private static DiscoveryRequest Request(string repository, IList<string>? adapters = null, string? prefix = null, string? secret = null) =>
        new(new AdapterSource { Type = AdapterSourceTypes.Http, Repository = repository, Adapters = adapters, Prefix = prefix }, null, secret);

    [Fact]
    public async Task Named_adapters_under_a_base_url_each_succeed_or_fail_alone()
    {
        var big = RemoteFixtures.Safetensors(4 << 20);
        Publish("lib/sql", RemoteFixtures.Config(16), big);
        Publish("lib/broken", RemoteFixtures.Config(), RemoteFixtures.WithHeader("[1,2]"u8.ToArray(), 16));
        Publish("lib/no-weights", RemoteFixtures.Config(), null);
        _server.Headers["Repr-Digest"] = "sha-256=:" + Convert.ToBase64String(SHA256.HashData(big)) + ":";

        var result = await Discovery().DiscoverAsync(Request(new Uri(_server.BaseUrl, "lib").ToString(), ["sql", "broken", "gone", "no-weights"]), CancellationToken.None);

        Assert.Null(result.SourceError);
        var sql = Assert.Single(result.Adapters);
        Assert.Equal(("sql", new Uri(_server.BaseUrl, "lib/sql").ToString(), 16, (long)big.Length), (sql.Name, sql.Uri, sql.Rank, sql.SizeBytes));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(big)), sql.Digest);
        Assert.True(_server.BytesServed["lib/sql/adapter_model.safetensors"] < 4096);
        var f = result.Failures.ToDictionary(x => x.Name);
        Assert.Equal(LoraAdapterReasons.InvalidAdapter, f["broken"].Reason);
        Assert.Contains("not a JSON object", f["broken"].Message);
        Assert.Equal(LoraAdapterReasons.AdapterNotFound, f["gone"].Reason);
        Assert.Equal(LoraAdapterReasons.AdapterNotFound, f["no-weights"].Reason);
    }

    [Fact]
    public async Task Without_names_the_url_is_one_adapter_and_the_digest_may_be_unknown()
    {
        Publish("one/support-en", RemoteFixtures.Config(4), RemoteFixtures.Safetensors(4096, rank: 4));
        var url = new Uri(_server.BaseUrl, "one/support-en/").ToString();
        var result = await Discovery().DiscoverAsync(Request(url), CancellationToken.None);
        var a = Assert.Single(result.Adapters);
        Assert.Equal(("support-en", url.TrimEnd('/'), 4, ""), (a.Name, a.Uri, a.Rank, a.Digest));

        var filtered = await Discovery().DiscoverAsync(Request(url, prefix: "sql"), CancellationToken.None);
        Assert.Empty(filtered.Adapters);
        Assert.Empty(filtered.Failures);
    }

    [Fact]
    public async Task Failures_of_the_server_itself()
    {
        var down = await Discovery().DiscoverAsync(Request($"http://127.0.0.1:{RemoteFixtures.ClosedPort()}/lib", ["a"]), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, down.SourceErrorReason);

        using var slowHttp = new SourceHttp(TimeSpan.FromMilliseconds(300));
        Publish("slow/a", RemoteFixtures.Config(), RemoteFixtures.Safetensors(1024));
        _server.Behaviour["slow/a/adapter_model.safetensors"] = Misbehaviour.Hang;
        var slow = await Discovery(slowHttp).DiscoverAsync(Request(new Uri(_server.BaseUrl, "slow").ToString(), ["a"]), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, slow.SourceErrorReason);
        Assert.Contains("timed out", slow.SourceError);

        Publish("err/a", RemoteFixtures.Config(), RemoteFixtures.Safetensors(1024));
        Publish("err/b", RemoteFixtures.Config(), RemoteFixtures.Safetensors(1024));
        _server.Behaviour["err/a/adapter_model.safetensors"] = Misbehaviour.Status500;
        var oneFails = await Discovery().DiscoverAsync(Request(new Uri(_server.BaseUrl, "err").ToString(), ["a", "b"]), CancellationToken.None);
        Assert.Equal(["b"], oneFails.Adapters.Select(x => x.Name));
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, Assert.Single(oneFails.Failures).Reason);

        _server.Behaviour["err/a/adapter_model.safetensors"] = Misbehaviour.Status403;
        var refused = await Discovery().DiscoverAsync(Request(new Uri(_server.BaseUrl, "err").ToString(), ["a"]), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.CredentialsMissing, refused.SourceErrorReason);
    }

    [Fact]
    public async Task Hostile_or_invalid_specs()
    {
        _server.Files["fat/adapter_config.json"] = new byte[PeftAdapter.MaxConfigBytes + 10];
        _server.Files["fat/adapter_model.safetensors"] = RemoteFixtures.Safetensors(1024);
        var fat = await Discovery().DiscoverAsync(Request(new Uri(_server.BaseUrl, "fat").ToString()), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.InvalidAdapter, Assert.Single(fat.Failures).Reason);
        Assert.Contains("the limit is", fat.Failures[0].Message);
        Assert.True(_server.BytesServed["fat/adapter_config.json"] < PeftAdapter.MaxConfigBytes + 10 || _server.Hits["fat/adapter_config.json"] == 1);

        var userInfo = await Discovery().DiscoverAsync(Request("http://user:pass@127.0.0.1/lib", ["a"]), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.InvalidSpec, userInfo.SourceErrorReason);
        Assert.DoesNotContain("pass", userInfo.SourceError!.Replace("password", ""), StringComparison.Ordinal);

        var relative = await Discovery().DiscoverAsync(Request("lib/a"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.InvalidSpec, relative.SourceErrorReason);

        var signed = await Discovery().DiscoverAsync(Request($"http://127.0.0.1:{RemoteFixtures.ClosedPort()}/lib?X-Signature=topsecret", ["a"]), CancellationToken.None);
        Assert.DoesNotContain("topsecret", signed.SourceError);

        var missingSecret = await Discovery(secrets: _dir.Path).DiscoverAsync(Request(new Uri(_server.BaseUrl, "fat").ToString(), secret: "absent"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.CredentialsMissing, missingSecret.SourceErrorReason);
    }

    [Theory]
    [InlineData("sha-256=:n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=:", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    [InlineData("sha-512=:AAAA:, sha-256=:n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=:", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    [InlineData("sha-256=:AAAA:", null)]
    [InlineData("sha-256=n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=", null)]
    public void Repr_Digest_gives_the_sha256(string header, string? expected) =>
        Assert.Equal(expected, HttpAdapterDiscovery.ReprDigestSha256([header]));
}
