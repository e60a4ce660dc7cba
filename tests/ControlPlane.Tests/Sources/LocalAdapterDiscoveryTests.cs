using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Sources;
using HybridServing.TestKit;

namespace HybridServing.ControlPlane.Tests.Sources;

public sealed class LocalAdapterDiscoveryTests : IDisposable
{
    private readonly TempDirectory _dir = new("disc");
    private readonly LocalAdapterDiscovery _discovery = new();

    public LocalAdapterDiscoveryTests()
    {
        TestAdapters.Write(_dir.Combine("repo"), "support-en", 8);
        TestAdapters.Write(_dir.Combine("repo"), "support-de", 16);
        TestAdapters.Write(_dir.Combine("repo"), "sql-lora", 8);
        Directory.CreateDirectory(_dir.Combine("repo", "not-an-adapter"));
    }

    public void Dispose() => _dir.Dispose();

    private Task<DiscoveryResult> Discover(string repository, string? pattern = null, string? prefix = null, IList<string>? adapters = null, string type = "local") =>
        _discovery.DiscoverAsync(new AdapterSource { Type = type, Repository = repository, Pattern = pattern, Prefix = prefix, Adapters = adapters }, _dir.Path, CancellationToken.None);

    [Fact]
    public async Task Lists_adapter_directories_with_their_facts()
    {
        var result = await Discover("repo");
        Assert.Null(result.SourceError);
        Assert.Equal(["sql-lora", "support-de", "support-en"], result.Adapters.Select(a => a.Name));
        var de = result.Adapters.Single(a => a.Name == "support-de");
        Assert.Equal(16, de.Rank);
        Assert.Equal(_dir.Combine("repo", "support-de"), de.Uri);
        Assert.Equal(["q_proj", "v_proj"], de.TargetModules);
        Assert.Equal(await PeftAdapter.ComputeDigestAsync(_dir.Combine("repo", "support-de", PeftAdapter.SafetensorsFileName)), de.Digest);
        Assert.True(de.SizeBytes > 0);
        Assert.Empty(result.Failures);
    }

    [Fact]
    public async Task Pattern_prefix_and_explicit_list_filter()
    {
        Assert.Equal(["support-de", "support-en"], (await Discover("repo", pattern: "support-*")).Adapters.Select(a => a.Name));
        Assert.Equal(["support-en"], (await Discover("repo", pattern: "*-e?")).Adapters.Select(a => a.Name));
        Assert.Equal(["sql-lora"], (await Discover("repo", prefix: "sql")).Adapters.Select(a => a.Name));
        Assert.Equal(["support-de"], (await Discover("repo", adapters: ["support-de"])).Adapters.Select(a => a.Name));
        Assert.Equal(["support-de"], (await Discover("repo", pattern: "support-[d]*")).Adapters.Select(a => a.Name));
    }

    [Fact]
    public async Task Repository_may_be_one_adapter_directory()
    {
        var result = await Discover("repo/sql-lora");
        Assert.Equal(["sql-lora"], result.Adapters.Select(a => a.Name));
    }

    [Fact]
    public async Task Explicit_names_cannot_escape_the_repository()
    {
        TestAdapters.Write(_dir.Path, "outside", 8);
        var result = await Discover("repo", adapters: ["../outside", "support-en"]);
        Assert.Equal(["support-en"], result.Adapters.Select(a => a.Name));
        var failure = Assert.Single(result.Failures);
        Assert.Equal(LoraAdapterReasons.InvalidAdapter, failure.Reason);
        Assert.Contains("outside the repository", failure.Message);
    }

    [Fact]
    public async Task Symlinks_out_of_the_repository_are_refused()
    {
        var target = TestAdapters.Write(_dir.Path, "elsewhere", 8);
        Directory.CreateSymbolicLink(_dir.Combine("repo", "linked"), target);
        var result = await Discover("repo", adapters: ["linked"]);
        Assert.Empty(result.Adapters);
        Assert.Contains("outside the repository", Assert.Single(result.Failures).Message);
    }

    [Fact]
    public async Task Missing_explicit_adapter_is_AdapterNotFound_and_others_still_work()
    {
        var result = await Discover("repo", adapters: ["nope", "sql-lora"]);
        Assert.Equal(["sql-lora"], result.Adapters.Select(a => a.Name));
        Assert.Equal(LoraAdapterReasons.AdapterNotFound, Assert.Single(result.Failures).Reason);
    }

    [Fact]
    public async Task Broken_adapter_is_InvalidAdapter_with_vLLMs_message()
    {
        File.WriteAllText(_dir.Combine("repo", "support-en", PeftAdapter.ConfigFileName), "{\"peft_type\":\"LORA\"}");
        var result = await Discover("repo", pattern: "support-*");
        Assert.Equal(["support-de"], result.Adapters.Select(a => a.Name));
        var failure = Assert.Single(result.Failures);
        Assert.Equal(LoraAdapterReasons.InvalidAdapter, failure.Reason);
        Assert.Contains("Missing required configuration fields", failure.Message);
    }

    [Fact]
    public async Task Missing_repository_is_SourceUnavailable()
    {
        var result = await Discover("no-such-dir");
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, result.SourceErrorReason);
        Assert.Contains("does not exist", result.SourceError);
    }

    [Fact]
    public async Task Other_source_types_are_not_listed_as_directories()
    {
        var result = await Discover("org/repo", type: "huggingface");
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, result.SourceErrorReason);
        Assert.Contains("not a local source", result.SourceError);
    }
}
