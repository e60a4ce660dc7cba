using HybridServing.AppHost.Orchestration;
using HybridServing.AppHost.Topology;

namespace HybridServing.AppHost.Tests;

public sealed class OrchestratorTests
{
    private static ResourceDefinition R(string name, params string[] deps) =>
        new(name, "X", [], new Dictionary<string, string>(), new Uri("http://127.0.0.1/health"), [], deps);

    [Fact]
    public void Levels_respect_dependencies()
    {
        var levels = Orchestrator.InDependencyOrder([R("gateway", "cp"), R("cp", "s0", "s1"), R("s0", "e0"), R("s1", "e1"), R("e0"), R("e1")]);
        Assert.Equal([["e0", "e1"], ["s0", "s1"], ["cp"], ["gateway"]], levels.Select(l => l.Select(r => r.Name).ToArray()).ToArray());
    }

    [Fact]
    public void A_cycle_or_an_unknown_dependency_is_refused()
    {
        Assert.Contains("cycle", Assert.Throws<ArgumentException>(() => Orchestrator.InDependencyOrder([R("a", "b"), R("b", "a")])).Message);
        Assert.Contains("unknown resource 'z'", Assert.Throws<ArgumentException>(() => Orchestrator.InDependencyOrder([R("a", "z")])).Message);
    }

    [Fact]
    public void Topology_wires_services_with_aspire_variables()
    {
        var o = AppHostOptions.Parse(["--engines", "2"]);
        var resources = LocalTopology.Build(o, "/m", ["/m"], "/state", "k");
        Assert.Equal(["engine-0", "sidecar-0", "engine-1", "sidecar-1", "controlplane", "gateway"], resources.Select(r => r.Name));

        var gateway = resources.Single(r => r.Name == "gateway");
        Assert.Equal("http://127.0.0.1:8082/", gateway.Environment["services__controlplane__grpc__0"]);
        Assert.Equal("gateway", gateway.Environment["OTEL_SERVICE_NAME"]);
        Assert.Equal(["controlplane"], gateway.DependsOn);

        var sidecar = resources.Single(r => r.Name == "sidecar-1");
        Assert.Equal("http://127.0.0.1:8001/", sidecar.Environment["Sidecar__EngineUrl"]);
        Assert.Equal("Http2", sidecar.Environment["Kestrel__Endpoints__Grpc__Protocols"]);

        var cp = resources.Single(r => r.Name == "controlplane");
        Assert.Equal("http://127.0.0.1:8021/", cp.Environment["ControlPlane__Engines__1__SidecarUrl"]);
        Assert.Equal("/m", cp.Environment["ControlPlane__ManifestsPath"]);

        var engine = resources.Single(r => r.Name == "engine-0");
        Assert.Contains("--enable-lora", engine.Arguments);
        Assert.Equal("true", engine.Environment["VLLM_ALLOW_RUNTIME_LORA_UPDATING"]);
    }
}

public sealed class OrchestratorFailureTests
{
    [Fact]
    public async Task A_child_that_fails_to_start_is_named_with_its_exit_code_and_last_output()
    {
        var port = HybridServing.TestKit.Ports.GetFree();
        var engine = new ResourceDefinition("engine-x", "MockEngine", ["--model", "m", "--max-loras", "0", "--port", port.ToString()],
            new Dictionary<string, string>(), new Uri($"http://127.0.0.1:{port}/health"), [], []);
        await using var orchestrator = new Orchestrator(ServiceBinaries.FindRepositoryRoot(), (_, _) => { }, TimeSpan.FromSeconds(60));

        var e = await Assert.ThrowsAsync<ResourceFailedException>(() => orchestrator.StartAsync([engine], CancellationToken.None));

        Assert.Equal("engine-x", e.Resource);
        Assert.Contains("exited with code 2 while starting", e.Message);
        Assert.Contains(e.RecentOutput, l => l.Contains("max_loras (0) must be >= 1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Stopping_ends_every_child()
    {
        var port = HybridServing.TestKit.Ports.GetFree();
        var engine = new ResourceDefinition("engine-y", "MockEngine", ["--model", "m", "--host", "127.0.0.1", "--port", port.ToString()],
            new Dictionary<string, string>(), new Uri($"http://127.0.0.1:{port}/health"), [], []);
        var orchestrator = new Orchestrator(ServiceBinaries.FindRepositoryRoot(), (_, _) => { }, TimeSpan.FromSeconds(60));
        await orchestrator.StartAsync([engine], CancellationToken.None);
        var child = Assert.Single(orchestrator.Running);

        await orchestrator.DisposeAsync();

        Assert.True(child.Exited.IsCompleted);
        Assert.False(child.ExitedUnexpectedly);
    }
}
