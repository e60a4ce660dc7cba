using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Sources;
using HybridServing.TestKit;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane.Tests.Sources;

public sealed class SourceDiscoveryTests
{
    [Fact]
    public async Task The_control_plane_dispatches_every_source_type_and_validates_its_options()
    {
        using var dir = new TempDirectory("srcdisp");
        TestAdapters.Write(dir.Path, "local-a");
        var builder = WebApplication.CreateBuilder();
        builder.Configuration["ControlPlane:HubEndpoint"] = $"http://127.0.0.1:{RemoteFixtures.ClosedPort()}";
        builder.Configuration["ControlPlane:SourceRequestTimeout"] = "00:00:02";
        builder.AddControlPlane();
        await using var provider = builder.Services.BuildServiceProvider();
        var discovery = provider.GetRequiredService<IAdapterDiscovery>();
        Assert.IsType<SourceDiscovery>(discovery);

        var local = await discovery.DiscoverAsync(new DiscoveryRequest(new AdapterSource { Type = "local", Repository = dir.Path }), CancellationToken.None);
        Assert.Equal(["local-a"], local.Adapters.Select(a => a.Name));
        var hub = await discovery.DiscoverAsync(new DiscoveryRequest(new AdapterSource { Type = "huggingface", Repository = "org/x" }), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, hub.SourceErrorReason);
        Assert.DoesNotContain("not implemented", hub.SourceError);
        var unknown = await discovery.DiscoverAsync(new DiscoveryRequest(new AdapterSource { Type = "ftp", Repository = "x" }), CancellationToken.None);
        Assert.Equal(LoraAdapterReasons.InvalidSpec, unknown.SourceErrorReason);
    }

    [Fact]
    public void Bad_source_options_name_the_key()
    {
        var result = new SourceOptionsValidator().Validate(null, new SourceOptions
        {
            SourceRequestTimeout = TimeSpan.Zero, SourceConcurrency = 0, HubEndpoint = "ftp://x", S3 = new S3SourceOptions { ServiceUrl = "nope" },
        });
        Assert.True(result.Failed);
        foreach (var key in new[] { "ControlPlane:SourceRequestTimeout", "ControlPlane:SourceConcurrency", "ControlPlane:HubEndpoint", "ControlPlane:S3:ServiceUrl" })
            Assert.Contains(result.Failures!, f => f.Contains(key, StringComparison.Ordinal));
        Assert.True(new SourceOptionsValidator().Validate(null, new SourceOptions()).Succeeded);
    }

    [Fact]
    public async Task Secrets_are_files_per_key_and_never_leave_their_folder()
    {
        using var dir = new TempDirectory("secrets");
        RemoteFixtures.Secret(dir.Path, "creds", new() { ["HF_TOKEN"] = "hf_abc" });
        File.WriteAllText(Path.Combine(dir.Path, "creds", "..data"), "ignored");
        var reader = new DirectorySecretReader(dir.Path);
        Assert.Equal(new Dictionary<string, string> { ["HF_TOKEN"] = "hf_abc" }, await reader.ReadAsync("creds", "default", default));
        Assert.Equal(LoraAdapterReasons.CredentialsMissing, (await Assert.ThrowsAsync<SourceException>(() => reader.ReadAsync("..", "default", default))).Reason);
        Assert.Equal(LoraAdapterReasons.CredentialsMissing, (await Assert.ThrowsAsync<SourceException>(() => reader.ReadAsync("a/b", "default", default))).Reason);
        Assert.Contains("does not exist", (await Assert.ThrowsAsync<SourceException>(() => reader.ReadAsync("other", "default", default))).Message);
        Assert.Contains("ControlPlane:SecretsDirectory", (await Assert.ThrowsAsync<SourceException>(() => new DirectorySecretReader(null).ReadAsync("creds", "default", default))).Message);
    }
}
