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

    /// <summary>The production-stack proposal's LoraAdapter example, character for character (its status included).</summary>
    internal const string ProductionStackExample = """
        apiVersion: production-stack.vllm-project/v1alpha1
        kind: LoraAdapter
        metadata:
          name: example-adapter
        spec:
          baseModel: "meta-llama/Llama-2-70b-hf"
          adapterSource:
            type: "huggingface"  # or "s3" or "local"
            repository: "org/repo"
            pattern: "*alpaca*"  # Optional: pattern matching
            adapters: []         # Optional: explicit list
            prefix: "lora-"      # Optional: prefix matching
          credentialsSecretRef:
            name: "source-credentials"
          deploymentConfig:
            loadOnStartup: true
            podSelector:
              matchLabels:
                lora-enabled: "true"
                baseModel: "meta-llama-Llama-2-70b-hf"
          schedulingConfig:
            priority: 10
            preemptionPolicy: "LowerPriority"  # or "None"
            resourceRequirements:
              memory: "2Gi"
        status:
          phase: "Ready"  # or "Loading", "Failed", "Partial"
          loadedAdapters:
            - "alpaca-lora-7b"
          failedAdapters:
            - name: "alpaca-lora-13b"
              reason: "Not enough memory"
          podAssignments:
            - pod: "vllm-llama-0"
              adapters: ["alpaca-lora-7b"]
        """;

    [Fact]
    public async Task Production_stack_proposal_example_with_only_apiVersion_changed_validates_and_reaches_Ready()
    {
        var yaml = ProductionStackExample.Replace("apiVersion: production-stack.vllm-project/v1alpha1", "apiVersion: hybridserving.io/v1alpha1", StringComparison.Ordinal);
        Assert.Equal(1, yaml.Split('\n').Zip(ProductionStackExample.Split('\n')).Count(p => p.First != p.Second));
        var doc = Assert.Single(HybridServing.ControlPlane.Resources.ManifestReader.Read("seed.yaml", yaml).Documents);
        Assert.Null(doc.Error);
        Assert.Empty(HybridServing.ControlPlane.Resources.LoraAdapterValidator.ValidateAll(doc.Adapter!));
        Assert.Equal(["alpaca-lora-7b"], doc.Adapter!.Status!.PodAssignments!.Single().Adapters);

        // The proposal's source: a private Hub repository org/repo (token in secret source-credentials) holding
        // adapters in folders; pattern and prefix both apply.
        var weights = RemoteFixtures.Safetensors(4096);
        foreach (var name in new[] { "lora-alpaca-7b", "lora-alpaca-13b", "alpaca-no-prefix", "lora-other" })
        {
            _hub.Files[$"org/repo/resolve/main/{name}/{PeftAdapter.ConfigFileName}"] = RemoteFixtures.Config();
            _hub.Files[$"org/repo/resolve/main/{name}/{PeftAdapter.SafetensorsFileName}"] = weights;
        }
        // memory: 2Gi needs an engine whose adapter memory allows it; these 4 KB fixtures imply far less (4 slots of
        // rank 16), so the engine reports its budget, as Sidecar:AdapterMemoryBudgetBytes does.
        var seedEngine = new FakeSidecar("vllm-llama-0", "node-0", baseModel: "meta-llama/Llama-2-70b-hf");
        seedEngine.Info.AdapterMemoryBudgetBytes = 8L << 30;
        await seedEngine.StartAsync();
        try
        {
            var manifests = Directory.CreateDirectory(_dir.Combine("seed-manifests")).FullName;
            Manifests.Write(manifests, "example-adapter.yaml", yaml);
            var secrets = RemoteFixtures.Secret(_dir.Combine("secrets"), "source-credentials", new() { ["HF_TOKEN"] = "hf_seed_token" });
            _host = await ControlPlaneHost.StartAsync(manifests, [seedEngine],
                labels: new Dictionary<string, IDictionary<string, string>> { ["vllm-llama-0"] = new Dictionary<string, string> { ["lora-enabled"] = "true", ["baseModel"] = "meta-llama-Llama-2-70b-hf" } },
                extra: new Dictionary<string, string?> { ["ControlPlane:HubEndpoint"] = _hub.BaseUrl.ToString(), ["ControlPlane:SecretsDirectory"] = secrets });

            var ready = await _host.WaitForAsync("example-adapter", a => a.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true);
            Assert.Equal(LoraAdapterPhases.Ready, ready.Status!.Phase);
            Assert.Equal(["lora-alpaca-13b", "lora-alpaca-7b"], ready.Status.LoadedAdapters);
            var pod = Assert.Single(ready.Status.PodAssignments!);
            Assert.Equal("vllm-llama-0", pod.Pod);
            Assert.Equal(["lora-alpaca-13b", "lora-alpaca-7b"], pod.Adapters);
            Assert.All(pod.AdapterStates, s => Assert.Equal("Loaded", s.State));
        }
        finally
        {
            if (_host is not null) await _host.DisposeAsync();
            _host = null;
            await seedEngine.DisposeAsync();
        }
    }
}
