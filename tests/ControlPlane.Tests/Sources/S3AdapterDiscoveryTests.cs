using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Sources;
using HybridServing.TestKit;

namespace HybridServing.ControlPlane.Tests.Sources;

/// <summary><c>type: s3</c> against a real s3rver (path-style, endpoint override), through a proxy that counts the bytes served.</summary>
public sealed class S3AdapterDiscoveryTests(S3rverFixture s3) : IClassFixture<S3rverFixture>, IAsyncLifetime, IDisposable
{
    private static readonly Dictionary<string, string> Keys = new() { ["AWS_ACCESS_KEY_ID"] = "S3RVER", ["AWS_SECRET_ACCESS_KEY"] = "S3RVER" };
    private readonly TempDirectory _dir = new("s3disc");
    private readonly string _run = "run-" + Guid.NewGuid().ToString("N")[..8];
    private CountingTcpProxy _proxy = null!;

    public Task InitializeAsync()
    {
        _proxy = new CountingTcpProxy(s3.ServiceUrl);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _proxy.DisposeAsync();

    public void Dispose() => _dir.Dispose();

    private async Task PutAsync(string key, byte[] bytes)
    {
        using var client = new AmazonS3Client(new BasicAWSCredentials("S3RVER", "S3RVER"),
            new AmazonS3Config { ServiceURL = s3.ServiceUrl.ToString(), ForcePathStyle = true, AuthenticationRegion = "us-east-1" });
        // UseChunkEncoding = false: s3rver would store aws-chunked framing as part of the object.
        await client.PutObjectAsync(new PutObjectRequest { BucketName = S3rverFixture.Bucket, Key = key, InputStream = new MemoryStream(bytes), UseChunkEncoding = false });
    }

    private async Task PutAdapterAsync(string prefix, byte[] config, byte[] weights)
    {
        await PutAsync($"{prefix}/{PeftAdapter.ConfigFileName}", config);
        await PutAsync($"{prefix}/{PeftAdapter.SafetensorsFileName}", weights);
    }

    private static DiscoveryRequest Request(string repository, string? secret = null, IList<string>? adapters = null, string? pattern = null) =>
        new(new AdapterSource { Type = AdapterSourceTypes.S3, Repository = repository, Adapters = adapters, Pattern = pattern }, null, secret);

    private S3AdapterDiscovery Discovery(SourceOptions? options = null, Dictionary<string, string>? environment = null) =>
        RemoteFixtures.S3(options ?? RemoteFixtures.Options(s3: _proxy.Url.ToString()), environment ?? Keys);

    [Fact]
    public async Task Lists_adapter_folders_under_the_prefix_reading_only_config_and_safetensors_header()
    {
        var big = RemoteFixtures.Safetensors(4 << 20, rank: 16);
        await PutAdapterAsync($"{_run}/team/sql", RemoteFixtures.Config(16, "q_proj", "k_proj"), big);
        await PutAdapterAsync($"{_run}/team/chat", RemoteFixtures.Config(8), RemoteFixtures.Safetensors(64 << 10));
        await PutAsync($"{_run}/team/notes/readme.txt", "not an adapter"u8.ToArray());
        await PutAdapterAsync($"{_run}/team/deep/nested", RemoteFixtures.Config(8), RemoteFixtures.Safetensors(1024)); // not a direct child

        var discovery = Discovery();
        _proxy.Reset();
        var result = await discovery.DiscoverAsync(Request($"{S3rverFixture.Bucket}/{_run}/team"), CancellationToken.None);

        Assert.Null(result.SourceError);
        Assert.Empty(result.Failures);
        Assert.Equal(["chat", "sql"], result.Adapters.Select(a => a.Name));
        var sql = result.Adapters.Single(a => a.Name == "sql");
        Assert.Equal($"s3://{S3rverFixture.Bucket}/{_run}/team/sql", sql.Uri);
        Assert.Equal(16, sql.Rank);
        Assert.Equal(["q_proj", "k_proj"], sql.TargetModules);
        Assert.Equal(big.Length, sql.SizeBytes);
        Assert.Equal("test/tiny", sql.ConfigBaseModel);
        // s3rver keeps no sha256 checksums: the digest stays empty rather than costing a full download.
        Assert.Equal("", sql.Digest);
        // Everything that came back over the wire (listing, configs, headers, HTTP framing) is far below one weights file.
        Assert.True(_proxy.BytesFromServer < 64 * 1024, $"{_proxy.BytesFromServer} bytes were served for a {big.Length}-byte weights file.");

        // Unchanged objects are not read again on the next listing.
        _proxy.Reset();
        var again = await discovery.DiscoverAsync(Request($"{S3rverFixture.Bucket}/{_run}/team"), CancellationToken.None);
        Assert.Equal(result.Adapters, again.Adapters);
        var listingOnly = _proxy.BytesFromServer;
        await PutAdapterAsync($"{_run}/team/sql", RemoteFixtures.Config(32), big);
        var changed = await discovery.DiscoverAsync(Request($"{S3rverFixture.Bucket}/{_run}/team"), CancellationToken.None);
        Assert.Equal(32, changed.Adapters.Single(a => a.Name == "sql").Rank);
        Assert.True(listingOnly < 8 * 1024, $"a re-list of unchanged adapters fetched {listingOnly} bytes.");
    }

    [Fact]
    public async Task The_prefix_may_be_one_adapter_and_explicit_names_and_patterns_filter()
    {
        await PutAdapterAsync($"{_run}/solo", RemoteFixtures.Config(4), RemoteFixtures.Safetensors(2048, rank: 4));
        await PutAdapterAsync($"{_run}/many/a-one", RemoteFixtures.Config(), RemoteFixtures.Safetensors(2048));
        await PutAdapterAsync($"{_run}/many/b-two", RemoteFixtures.Config(), RemoteFixtures.Safetensors(2048));
        var discovery = Discovery();

        var solo = await discovery.DiscoverAsync(Request($"{S3rverFixture.Bucket}/{_run}/solo"), CancellationToken.None);
        Assert.Equal([("solo", $"s3://{S3rverFixture.Bucket}/{_run}/solo", 4)], solo.Adapters.Select(a => (a.Name, a.Uri, a.Rank)));

        var named = await discovery.DiscoverAsync(Request($"{S3rverFixture.Bucket}/{_run}/many", adapters: ["b-two", "c-three"]), CancellationToken.None);
        Assert.Equal(["b-two"], named.Adapters.Select(a => a.Name));
        var missing = Assert.Single(named.Failures);
        Assert.Equal(("c-three", LoraAdapterReasons.AdapterNotFound), (missing.Name, missing.Reason));

        var patterned = await discovery.DiscoverAsync(Request($"{S3rverFixture.Bucket}/{_run}/many", pattern: "a-*"), CancellationToken.None);
        Assert.Equal(["a-one"], patterned.Adapters.Select(a => a.Name));
    }

    [Fact]
    public async Task A_malformed_adapter_fails_alone_with_the_PEFT_message()
    {
        await PutAdapterAsync($"{_run}/mixed/good", RemoteFixtures.Config(), RemoteFixtures.Safetensors(4096));
        await PutAdapterAsync($"{_run}/mixed/no-rank", """{"peft_type":"LORA","lora_alpha":16}"""u8.ToArray(), RemoteFixtures.Safetensors(4096));
        await PutAdapterAsync($"{_run}/mixed/hostile", RemoteFixtures.Config(), RemoteFixtures.HostileLength());
        await PutAsync($"{_run}/mixed/no-weights/{PeftAdapter.ConfigFileName}", RemoteFixtures.Config());
        await PutAdapterAsync($"{_run}/mixed/dora", """{"r":8,"lora_alpha":16,"target_modules":["q_proj"],"use_dora":true}"""u8.ToArray(), RemoteFixtures.Safetensors(4096));

        var result = await Discovery().DiscoverAsync(Request($"{S3rverFixture.Bucket}/{_run}/mixed"), CancellationToken.None);

        Assert.Null(result.SourceError);
        Assert.Equal(["good"], result.Adapters.Select(a => a.Name));
        var failures = result.Failures.ToDictionary(f => f.Name);
        Assert.Equal(LoraAdapterReasons.InvalidAdapter, failures["no-rank"].Reason);
        Assert.Contains("Missing required configuration fields", failures["no-rank"].Message);
        Assert.Equal(LoraAdapterReasons.InvalidAdapter, failures["hostile"].Reason);
        Assert.Contains("exceeds the file size", failures["hostile"].Message);
        Assert.Equal(LoraAdapterReasons.AdapterNotFound, failures["no-weights"].Reason);
        Assert.Equal(LoraAdapterReasons.AdapterIncompatible, failures["dora"].Reason);
        Assert.Contains("DoRA", failures["dora"].Message);
    }

    [Fact]
    public async Task Credentials_come_from_the_named_secret_and_a_missing_secret_or_key_is_CredentialsMissing()
    {
        await PutAdapterAsync($"{_run}/secret/a", RemoteFixtures.Config(), RemoteFixtures.Safetensors(2048));
        var secrets = RemoteFixtures.Secret(_dir.Combine("secrets"), "s3-creds",
            new() { ["AWS_ACCESS_KEY_ID"] = "S3RVER", ["AWS_SECRET_ACCESS_KEY"] = "S3RVER", ["AWS_ENDPOINT_URL"] = _proxy.Url.ToString(), ["AWS_REGION"] = "eu-west-1" });
        RemoteFixtures.Secret(secrets, "half", new() { ["AWS_ACCESS_KEY_ID"] = "S3RVER" });
        // No endpoint, no keys in configuration or environment: everything comes from the secret.
        var discovery = RemoteFixtures.S3(RemoteFixtures.Options(secrets: secrets), environment: []);

        var ok = await discovery.DiscoverAsync(Request($"{S3rverFixture.Bucket}/{_run}/secret", secret: "s3-creds"), CancellationToken.None);
        Assert.Null(ok.SourceError);
        Assert.Equal(["a"], ok.Adapters.Select(a => a.Name));

        var absent = await discovery.DiscoverAsync(Request($"{S3rverFixture.Bucket}/{_run}/secret", secret: "nope"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.CredentialsMissing, absent.SourceErrorReason);
        Assert.Contains("secret 'nope'", absent.SourceError);

        var half = await discovery.DiscoverAsync(Request($"{S3rverFixture.Bucket}/{_run}/secret", secret: "half"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.CredentialsMissing, half.SourceErrorReason);
        Assert.Contains("AWS_SECRET_ACCESS_KEY", half.SourceError);
        Assert.DoesNotContain("S3RVER", half.SourceError);

        var unconfigured = await RemoteFixtures.S3(RemoteFixtures.Options(s3: _proxy.Url.ToString()), Keys)
            .DiscoverAsync(Request($"{S3rverFixture.Bucket}/{_run}/secret", secret: "s3-creds"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.CredentialsMissing, unconfigured.SourceErrorReason);
        Assert.Contains("ControlPlane:SecretsDirectory", unconfigured.SourceError);
    }

    [Fact]
    public async Task Unreachable_store_missing_bucket_and_bad_repository_are_source_errors()
    {
        var down = await Discovery(RemoteFixtures.Options(s3: $"http://127.0.0.1:{RemoteFixtures.ClosedPort()}"))
            .DiscoverAsync(Request($"{S3rverFixture.Bucket}/x"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, down.SourceErrorReason);
        Assert.Contains("listing s3://adapters/x failed", down.SourceError);

        var noBucket = await Discovery().DiscoverAsync(Request("no-such-bucket/x"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, noBucket.SourceErrorReason);
        Assert.Contains("bucket does not exist", noBucket.SourceError);

        var bad = await Discovery().DiscoverAsync(Request("Bad_Bucket/x"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.InvalidSpec, bad.SourceErrorReason);
        Assert.Contains("spec.adapterSource.repository", bad.SourceError);
        var dots = await Discovery().DiscoverAsync(Request("adapters/a/../b"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.InvalidSpec, dots.SourceErrorReason);
    }

    [Fact]
    public async Task A_store_that_never_answers_times_out()
    {
        using var silent = new SilentServer();
        var started = DateTime.UtcNow;
        var result = await Discovery(RemoteFixtures.Options(timeout: TimeSpan.FromMilliseconds(400), s3: silent.Url.ToString()))
            .DiscoverAsync(Request($"{S3rverFixture.Bucket}/x"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, result.SourceErrorReason);
        Assert.Contains("timed out", result.SourceError);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Without_a_secret_or_keys_in_the_environment_and_no_SDK_credentials_it_is_CredentialsMissing()
    {
        // The SDK's chain (profiles, web identity, container and instance roles) finds nothing on a test machine; its
        // instance-metadata probe is bounded by the request deadline.
        Assert.Null(Environment.GetEnvironmentVariable("AWS_ACCESS_KEY_ID"));
        var result = await Discovery(RemoteFixtures.Options(timeout: TimeSpan.FromSeconds(2), s3: _proxy.Url.ToString()), environment: [])
            .DiscoverAsync(Request($"{S3rverFixture.Bucket}/x"), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.CredentialsMissing, result.SourceErrorReason);
        Assert.Contains("no S3 credentials", result.SourceError);
    }

    [Theory]
    [InlineData("n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=", null, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    [InlineData("n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=", "FULL_OBJECT", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    [InlineData("n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=-3", null, null)]
    [InlineData("n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=", "COMPOSITE", null)]
    [InlineData("not base64", null, null)]
    [InlineData("", null, null)]
    public void Only_a_full_object_sha256_checksum_is_a_digest(string checksum, string? type, string? expected) =>
        Assert.Equal(expected, S3AdapterDiscovery.FullObjectSha256(checksum, type));
}
