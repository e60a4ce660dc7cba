using System.Security.Cryptography;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.TestKit;

namespace HybridServing.ControlPlane.Tests.Sources;

/// <summary>A Hub-sourced LoraAdapter through the whole control plane: discovered, placed, and handed to the sidecar as a source it can fetch.</summary>
public sealed class RemoteSourceEndToEndTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("cp-remote");
    private FakeSidecar _sidecar = null!;
    private ArtifactServer _hub = null!;
    private ControlPlaneHost? _host;

    public async Task InitializeAsync()
    {
        _hub = await ArtifactServer.StartAsync();
        _sidecar = new FakeSidecar("engine-0", "node-0");
        await _sidecar.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_host is not null) await _host.DisposeAsync();
        await _sidecar.DisposeAsync();
        await _hub.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task A_hub_source_reaches_Ready_with_hf_uris_and_digests_and_a_missing_secret_is_CredentialsMissing()
    {
        var weights = RemoteFixtures.Safetensors(8192);
        foreach (var name in new[] { "sql", "chat" })
        {
            _hub.Files[$"org/loras/resolve/v2/{name}/{PeftAdapter.ConfigFileName}"] = RemoteFixtures.Config();
            _hub.Files[$"org/loras/resolve/v2/{name}/{PeftAdapter.SafetensorsFileName}"] = weights;
        }
        var manifests = Directory.CreateDirectory(_dir.Combine("manifests")).FullName;
        Manifests.Write(manifests, "hub.yaml", """
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: hub
            spec:
              baseModel: test/tiny
              adapterSource:
                type: huggingface
                repository: org/loras
                revision: v2
            ---
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: locked
            spec:
              baseModel: test/tiny
              credentialsSecretRef:
                name: not-there
              adapterSource:
                type: s3
                repository: bucket/prefix
            """);
        _host = await ControlPlaneHost.StartAsync(manifests, [_sidecar], extra: new Dictionary<string, string?>
        {
            ["ControlPlane:HubEndpoint"] = _hub.BaseUrl.ToString(),
            ["ControlPlane:SecretsDirectory"] = Directory.CreateDirectory(_dir.Combine("secrets")).FullName,
        });

        var ready = await _host.WaitForAsync("hub", a => a.Status?.LoadedAdapters?.Count == 2);
        var digest = Convert.ToHexStringLower(SHA256.HashData(weights));
        Assert.Equal(["hf://org/loras/chat@v2", "hf://org/loras/sql@v2"], ready.Status!.Adapters!.Select(a => a.Uri).Order());
        Assert.All(ready.Status.Adapters!, a => Assert.Equal("sha256:" + digest, a.Digest));
        var sent = _sidecar.EnsureCalls.Last().Adapters.ToDictionary(a => a.Name);
        Assert.Equal("hf://org/loras/sql@v2", sent["sql"].Source);
        Assert.Equal(digest, sent["sql"].Sha256);

        var locked = await _host.WaitForAsync("locked", a => a.Status?.Conditions?.Any(c => c.Type == "Ready") == true);
        var condition = locked.Status!.Conditions!.Single(c => c.Type == "Ready");
        Assert.Equal(("False", LoraAdapterReasons.CredentialsMissing), (condition.Status, condition.Reason));
        Assert.Contains("secret 'not-there'", condition.Message);
    }

    [Fact]
    public async Task An_http_source_on_loopback_is_refused_by_the_ssrf_guard_until_the_option_allows_it()
    {
        _hub.Files[$"lib/sql/{PeftAdapter.ConfigFileName}"] = RemoteFixtures.Config();
        _hub.Files[$"lib/sql/{PeftAdapter.SafetensorsFileName}"] = RemoteFixtures.Safetensors(1024);
        var manifests = Directory.CreateDirectory(_dir.Combine("manifests")).FullName;
        Manifests.Write(manifests, "web.yaml", $"""
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: web
            spec:
              baseModel: test/tiny
              adapterSource:
                type: http
                repository: {new Uri(_hub.BaseUrl, "lib")}
                adapters: [sql]
            """);
        _host = await ControlPlaneHost.StartAsync(manifests, [_sidecar]);
        var refused = await _host.WaitForAsync("web", a => a.Status?.Conditions?.Any(c => c.Type == "Degraded" && c.Status == "True") == true);
        var degraded = refused.Status!.Conditions!.Single(c => c.Type == "Degraded");
        Assert.Equal("AddressNotAllowed", degraded.Reason);
        Assert.Contains("loopback", degraded.Message);
        Assert.Contains("Allow it with ControlPlane:Sources:Http:AllowedHosts:N=127.0.0.1", degraded.Message);
        Assert.Empty(_hub.Hits);
        Assert.Empty(_sidecar.Desired);

        await _host.DisposeAsync();
        _host = await ControlPlaneHost.StartAsync(manifests, [_sidecar], extra: new Dictionary<string, string?> { ["ControlPlane:Sources:Http:AllowedHosts:0"] = "127.0.0.1" });
        await _host.WaitForAsync("web", a => a.Status?.LoadedAdapters?.Count == 1);
    }
}
