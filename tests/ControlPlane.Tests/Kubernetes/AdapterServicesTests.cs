using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Kubernetes;
using HybridServing.KubeApiTestServer;
using k8s.Models;
using static HybridServing.ControlPlane.Tests.Kubernetes.KubeHarness;

namespace HybridServing.ControlPlane.Tests.Kubernetes;

public sealed class AdapterServicesTests
{
    // ------------------------------------------------------------------ pure desired state

    private static LoraAdapter Declared(string name, string uid, params (string Pod, string Adapter, string State)[] states)
    {
        var a = Adapter(name);
        a.Metadata.Uid = uid;
        a.Metadata.CreationTimestamp = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        a.Status = new LoraAdapterStatus
        {
            PodAssignments = [.. states.GroupBy(s => s.Pod).Select(g => new PodAssignment
            {
                Pod = g.Key,
                AdapterStates = [.. g.Select(s => new PodAdapterState { Name = s.Adapter, State = s.State })],
            })],
        };
        return a;
    }

    private static V1Pod Pod(string name, string ip, string? enginePort = null, string phase = "Running", string node = "node-1")
    {
        var pod = EnginePod(name, ip, phase, node: node);
        pod.Metadata.Uid = "uid-" + name;
        if (enginePort is not null) pod.Metadata.Annotations!["hybridserving.io/engine-port"] = enginePort;
        return pod;
    }

    private static string Describe(IReadOnlyList<DesiredAdapterService> desired) =>
        string.Join("; ", desired.Select(d => $"{d.Namespace}/{d.ServiceName}({d.AdapterName})->{d.TargetPort}:[{string.Join(",", d.Endpoints.Select(e => $"{e.PodName}={e.Ip}@{e.Node}"))}]"));

    public static TheoryData<string, LoraAdapter[], V1Pod[], string> DesiredCases() => new()
    {
        { "loaded on two pods: one service, both IPs",
            [Declared("sql", "u1", ("vllm-0", "sql-v1", "Loaded"), ("vllm-1", "sql-v1", "Loaded"))],
            [Pod("vllm-0", "10.0.0.1", node: "n0"), Pod("vllm-1", "10.0.0.2", node: "n1")],
            "team-a/sql-v1(sql-v1)->8000:[vllm-0=10.0.0.1@n0,vllm-1=10.0.0.2@n1]" },
        { "only Loaded counts",
            [Declared("sql", "u1", ("vllm-0", "sql-v1", "Loading"), ("vllm-1", "sql-v1", "Loaded"), ("vllm-1", "sql-v2", "Failed"))],
            [Pod("vllm-0", "10.0.0.1"), Pod("vllm-1", "10.0.0.2")],
            "team-a/sql-v1(sql-v1)->8000:[vllm-1=10.0.0.2@node-1]" },
        { "engine port from the annotation",
            [Declared("sql", "u1", ("vllm-0", "sql-v1", "Loaded"))],
            [Pod("vllm-0", "10.0.0.1", enginePort: "8080")],
            "team-a/sql-v1(sql-v1)->8080:[vllm-0=10.0.0.1@node-1]" },
        { "a bad engine port annotation leaves the pod out",
            [Declared("sql", "u1", ("vllm-0", "sql-v1", "Loaded"))],
            [Pod("vllm-0", "10.0.0.1", enginePort: "http")],
            "" },
        { "a pod no longer running, unknown or IPv6 is no endpoint",
            [Declared("sql", "u1", ("vllm-0", "sql-v1", "Loaded"), ("gone", "sql-v1", "Loaded"), ("v6", "sql-v1", "Loaded"), ("vllm-2", "sql-v1", "Loaded"))],
            [Pod("vllm-0", "10.0.0.1", phase: "Succeeded"), Pod("v6", "fd00::1"), Pod("vllm-2", "10.0.0.3")],
            "team-a/sql-v1(sql-v1)->8000:[vllm-2=10.0.0.3@node-1]" },
        { "names that are not DNS labels are sanitised with a hash",
            [Declared("sql", "u1", ("vllm-0", "SQL_v1.2", "Loaded"), ("vllm-0", "7b-lora", "Loaded"))],
            [Pod("vllm-0", "10.0.0.1")],
            $"team-a/{AdapterServices.ServiceName("7b-lora")}(7b-lora)->8000:[vllm-0=10.0.0.1@node-1]; team-a/{AdapterServices.ServiceName("SQL_v1.2")}(SQL_v1.2)->8000:[vllm-0=10.0.0.1@node-1]" },
        { "nothing loaded: nothing wanted",
            [Declared("sql", "u1")],
            [Pod("vllm-0", "10.0.0.1")],
            "" },
    };

    [Theory]
    [MemberData(nameof(DesiredCases))]
    public void Desired_state_follows_loaded_pod_assignments(string why, LoraAdapter[] adapters, V1Pod[] pods, string expected)
    {
        var desired = AdapterServices.Desired(adapters, pods, "hybridserving.io/engine-port", 8000);
        Assert.True(expected == Describe(desired), $"{why}: expected '{expected}', got '{Describe(desired)}'");
    }

    [Fact]
    public void A_deleting_object_exposes_nothing_and_the_older_object_keeps_a_shared_name()
    {
        var deleting = Declared("old", "u0", ("vllm-0", "shared", "Loaded"));
        deleting.Metadata.DeletionTimestamp = DateTime.UtcNow;
        Assert.Empty(AdapterServices.Desired([deleting], [Pod("vllm-0", "10.0.0.1")], "hybridserving.io/engine-port", 8000));

        var older = Declared("older", "u1", ("vllm-0", "shared", "Loaded"));
        var newer = Declared("newer", "u2", ("vllm-1", "shared", "Loaded"));
        newer.Metadata.CreationTimestamp = older.Metadata.CreationTimestamp!.Value.AddMinutes(1);
        var d = Assert.Single(AdapterServices.Desired([newer, older], [Pod("vllm-0", "10.0.0.1"), Pod("vllm-1", "10.0.0.2")], "hybridserving.io/engine-port", 8000));
        Assert.Equal(("older", "u1", "vllm-0"), (d.OwnerName, d.OwnerUid, d.Endpoints.Single().PodName));
    }

    [Theory]
    [InlineData("sql-v1", "sql-v1", false)]
    [InlineData("SQL", "sql", true)]
    [InlineData("a_b", "a-b", true)]
    [InlineData("a.b", "a-b", true)]
    [InlineData("7b", "lora-7b", true)]
    [InlineData("x--", "x", true)]
    public void Service_names_are_dns_labels(string adapter, string prefix, bool hashed)
    {
        var name = AdapterServices.ServiceName(adapter);
        Assert.Matches("^[a-z]([-a-z0-9]*[a-z0-9])?$", name);
        Assert.True(name.Length <= 63);
        if (hashed) Assert.Matches($"^{prefix}-[0-9a-f]{{8}}$", name);
        else Assert.Equal(prefix, name);
        Assert.NotEqual(AdapterServices.ServiceName("a_b"), AdapterServices.ServiceName("a.b"));
        var longName = AdapterServices.ServiceName(new string('a', 128));
        Assert.Equal(63, longName.Length);
    }

    // ------------------------------------------------------------------ against the API server

    private static int Writes(KubeApiServer server) =>
        server.Requests.Count(r => r.IsMutating && r.Resource is "services" or "endpointslices");

    private static async Task<KubernetesHome> Started(KubeApiServer server, bool enabled = true)
    {
        var home = Home(server, FastOptions(o => o.AdapterServices = enabled));
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => home.Synced && home.Current.Adapters.Count == 1 && home.Current.Engines.Count == 3, "the first picture");
        return home;
    }

    private static void SeedCluster(KubeApiServer server)
    {
        server.Seed(Adapter("sql"));
        server.Seed(Pod("vllm-0", "10.0.0.1", enginePort: "8081", node: "n0"));
        server.Seed(Pod("vllm-1", "10.0.0.2", enginePort: "8081", node: "n1"));
        server.Seed(Pod("vllm-2", "10.0.0.3", enginePort: "8081", node: "n2"));
    }

    private static LoraAdapterStatus LoadedOn(params string[] pods)
    {
        var status = Status(LoraAdapterPhases.Ready, "sql-v1");
        status.PodAssignments = [.. pods.Select(p => new PodAssignment { Pod = p, AdapterStates = [new PodAdapterState { Name = "sql-v1", State = "Loaded" }] })];
        return status;
    }

    private static async Task Report(KubernetesHome home, params string[] pods) =>
        await home.WriteStatusAsync([WithStatus(home.Current.Adapters.Single().Resource, LoadedOn(pods))], CancellationToken.None);

    private static string[] SliceIps(KubeApiServer server) =>
        server.Get<V1EndpointSlice>(Ns, "sql-v1")?.Endpoints?.SelectMany(e => e.Addresses).Order(StringComparer.Ordinal).ToArray() ?? [];

    [Fact]
    public async Task An_adapter_on_two_pods_gets_one_service_and_one_slice_then_follows_moves_and_goes_when_unloaded()
    {
        await using var server = await KubeApiServer.StartAsync();
        SeedCluster(server);
        await using var home = await Started(server);

        await Report(home, "vllm-0", "vllm-1");
        await WaitUntilAsync(() => SliceIps(server).SequenceEqual(["10.0.0.1", "10.0.0.2"]), "the slice lists both pods");

        var owner = server.Get<LoraAdapter>(Ns, "sql")!;
        var service = server.Get<V1Service>(Ns, "sql-v1")!;
        Assert.Null(service.Spec.Selector);
        Assert.Equal("ClusterIP", service.Spec.Type);
        var port = Assert.Single(service.Spec.Ports);
        Assert.Equal(("http", 8000, "8081"), (port.Name, port.Port, port.TargetPort.Value));
        Assert.Equal("sql-v1", service.Metadata.Labels["hybridserving.io/adapter"]);
        Assert.Equal("hybridserving", service.Metadata.Labels["app.kubernetes.io/managed-by"]);
        var serviceOwner = Assert.Single(service.Metadata.OwnerReferences);
        Assert.Equal(("LoraAdapter", "sql", owner.Metadata.Uid), (serviceOwner.Kind, serviceOwner.Name, serviceOwner.Uid));

        var slice = server.Get<V1EndpointSlice>(Ns, "sql-v1")!;
        Assert.Equal("IPv4", slice.AddressType);
        Assert.Equal("sql-v1", slice.Metadata.Labels["kubernetes.io/service-name"]);
        Assert.Equal("controlplane.hybridserving.io", slice.Metadata.Labels["endpointslice.kubernetes.io/managed-by"]);
        Assert.Equal(service.Metadata.Uid, Assert.Single(slice.Metadata.OwnerReferences).Uid);
        Assert.Equal(8081, Assert.Single(slice.Ports).Port);
        Assert.All(slice.Endpoints, e => Assert.True(e.Conditions.Ready));
        Assert.Equal(["vllm-0", "vllm-1"], slice.Endpoints.Select(e => e.TargetRef.Name));
        Assert.Equal(["n0", "n1"], slice.Endpoints.Select(e => e.NodeName));
        Assert.Equal(["Pod", "Pod"], slice.Endpoints.Select(e => e.TargetRef.Kind));

        // Moved: vllm-0 gave it up, vllm-2 took it.
        await Report(home, "vllm-1", "vllm-2");
        await WaitUntilAsync(() => SliceIps(server).SequenceEqual(["10.0.0.2", "10.0.0.3"]), "the slice follows the move");
        Assert.Equal(service.Metadata.Uid, server.Get<V1Service>(Ns, "sql-v1")!.Metadata.Uid);

        // Unloaded everywhere: both go.
        await Report(home);
        await WaitUntilAsync(() => server.Get<V1Service>(Ns, "sql-v1") is null && server.Get<V1EndpointSlice>(Ns, "sql-v1") is null, "service and slice deleted");
        Assert.True(home.Budget.Spent > 0);
    }

    [Fact]
    public async Task Services_give_way_to_a_status_that_waits_instead_of_holding_it_for_the_whole_sync()
    {
        await using var server = await KubeApiServer.StartAsync();
        SeedCluster(server);
        server.Seed(Adapter("late"));
        // 20 writes/s, no burst: 20 adapters = 40 Service/EndpointSlice writes, two seconds.
        await using var home = Home(server, FastOptions(o => { o.AdapterServices = true; o.MutationsPerSecond = 20; o.MutationBurst = 1; }));
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => home.Synced && home.Current.Adapters.Count == 2 && home.Current.Engines.Count == 3, "the first picture");
        await WaitUntilAsync(() => server.List<LoraAdapter>(Ns).All(a => a.Metadata.Finalizers?.Count == 1), "finalizers");
        var names = Enumerable.Range(0, 20).Select(i => $"sql-v{i}").ToArray();
        var status = Status(LoraAdapterPhases.Ready, names);
        status.PodAssignments = [new PodAssignment { Pod = "vllm-0", AdapterStates = [.. names.Select(n => new PodAdapterState { Name = n, State = "Loaded" })] }];
        var sql = home.Current.Adapters.Single(a => a.Resource.Metadata.Name == "sql").Resource;
        await home.WriteStatusAsync([WithStatus(sql, status)], CancellationToken.None);
        await WaitUntilAsync(() => server.List<V1Service>(Ns).Count >= 2, "the Services are being written");

        var late = home.Current.Adapters.Single(a => a.Resource.Metadata.Name == "late").Resource;
        await home.WriteStatusAsync([WithStatus(late, Status(LoraAdapterPhases.Ready, "late-v1"))], CancellationToken.None);
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "late")!.Status?.Phase == LoraAdapterPhases.Ready, "the late status is written");
        var servicesBefore = server.List<V1Service>(Ns).Count;
        Assert.True(servicesBefore < names.Length, $"the status waited for all {servicesBefore} Services");
        // And the Services then finish.
        await WaitUntilAsync(() => server.List<V1Service>(Ns).Count == names.Length && server.List<V1EndpointSlice>(Ns).Count == names.Length, "every Service and slice", seconds: 20);
    }

    [Fact]
    public async Task Disabled_by_default_writes_nothing()
    {
        Assert.False(new KubernetesHomeOptions().AdapterServices);
        await using var server = await KubeApiServer.StartAsync();
        SeedCluster(server);
        await using var home = await Started(server, enabled: false);

        await Report(home, "vllm-0", "vllm-1");
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Status?.PodAssignments?.Count == 2, "the status is stored");
        await Task.Delay(300); // a writer pass after the status write would have made them
        Assert.Null(home.Services);
        Assert.Equal(0, server.Requests.Count(r => r.Resource is "services" or "endpointslices"));
    }

    [Fact]
    public async Task Nothing_is_written_when_nothing_changed_even_after_a_restart()
    {
        await using var server = await KubeApiServer.StartAsync();
        SeedCluster(server);
        await using (var home = await Started(server))
        {
            await Report(home, "vllm-0", "vllm-1");
            await WaitUntilAsync(() => SliceIps(server).Length == 2, "the slice is written");
            Assert.Equal(2, Writes(server)); // one create each

            // Other changes wake the writer: a new status (same assignments), a pod label.
            var status = LoadedOn("vllm-1", "vllm-0");
            status.Phase = LoraAdapterPhases.Partial;
            await home.WriteStatusAsync([WithStatus(home.Current.Adapters.Single().Resource, status)], CancellationToken.None);
            await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Status?.Phase == LoraAdapterPhases.Partial, "the new status is stored");
            var pod = server.Get<V1Pod>(Ns, "vllm-2")!;
            pod.Metadata.Labels["touched"] = "yes";
            server.Seed(pod);
            await Task.Delay(300);
            Assert.Equal(2, Writes(server));
        }

        // A new leader lists what exists and finds it right.
        server.ClearRequests();
        await using var restarted = await Started(server);
        await WaitUntilAsync(() => server.Requests.Count(r => r.Verb == "list" && r.Resource == "endpointslices") >= 1, "the restarted home compared");
        await Task.Delay(200);
        Assert.Equal(0, Writes(server));
    }

    [Fact]
    public async Task A_conflicting_slice_update_is_reread_and_retried()
    {
        await using var server = await KubeApiServer.StartAsync();
        SeedCluster(server);
        await using var home = await Started(server);
        await Report(home, "vllm-0");
        await WaitUntilAsync(() => SliceIps(server).Length == 1, "the slice is written");

        var conflict = server.FailNext("update", "endpointslices", 409, count: 2);
        await Report(home, "vllm-0", "vllm-2");
        await WaitUntilAsync(() => SliceIps(server).SequenceEqual(["10.0.0.1", "10.0.0.3"]), "the slice is updated despite two conflicts");
        Assert.Equal(2, conflict.Hits);
        Assert.True(server.Requests.Count(r => r.Verb == "get" && r.Resource == "endpointslices" && r.Name == "sql-v1") >= 2);
    }

    [Fact]
    public async Task A_follower_writes_nothing()
    {
        await using var server = await KubeApiServer.StartAsync();
        SeedCluster(server);
        var leadership = new ManualLeadership(true);
        await using var home = Home(server, FastOptions(o => o.AdapterServices = true), leadership);
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => home.Synced && home.Current.Adapters.Count == 1 && home.Current.Engines.Count == 3, "the first picture");
        leadership.Set(false);

        // Another replica recorded the status.
        var stored = server.Get<LoraAdapter>(Ns, "sql")!;
        stored.Status = LoadedOn("vllm-0");
        server.Seed(stored);
        await WaitUntilAsync(() => home.AdapterInformer.Objects.Values.Any(o => o.TryGetProperty("status", out _)), "the follower sees it");
        await Task.Delay(300);
        Assert.Equal(0, Writes(server));

        leadership.Set(true);
        await WaitUntilAsync(() => SliceIps(server).SequenceEqual(["10.0.0.1"]), "the new leader writes it");
    }

    [Fact]
    public async Task A_service_of_the_same_name_that_is_not_ours_is_left_alone()
    {
        await using var server = await KubeApiServer.StartAsync();
        SeedCluster(server);
        server.Seed(new V1Service
        {
            ApiVersion = "v1", Kind = "Service",
            Metadata = new V1ObjectMeta { Name = "sql-v1", NamespaceProperty = Ns, Labels = new Dictionary<string, string> { ["team"] = "a" } },
            Spec = new V1ServiceSpec { Ports = [new V1ServicePort { Name = "web", Port = 80 }] },
        });
        await using var home = await Started(server);

        await Report(home, "vllm-0");
        await WaitUntilAsync(() => server.Requests.Any(r => r.Verb == "create" && r.Resource == "services" && r.StatusCode == 409), "the create met the user's Service");
        await WaitUntilAsync(() => server.Requests.Any(r => r.Verb == "get" && r.Resource == "services" && r.Name == "sql-v1"), "it was read");
        await Task.Delay(200);
        var service = server.Get<V1Service>(Ns, "sql-v1")!;
        Assert.Equal(new Dictionary<string, string> { ["team"] = "a" }, service.Metadata.Labels);
        Assert.Equal("web", Assert.Single(service.Spec.Ports).Name);
        Assert.Null(server.Get<V1EndpointSlice>(Ns, "sql-v1"));
        Assert.DoesNotContain(server.Requests, r => r.IsMutating && r.Resource is "services" or "endpointslices" && r.StatusCode < 300);
    }

    [Fact]
    public void The_validator_names_bad_engine_port_settings()
    {
        var result = new KubernetesHomeOptionsValidator().Validate(null, new KubernetesHomeOptions { AdapterServices = true, EnginePortAnnotation = " ", DefaultEnginePort = 0 });
        Assert.True(result.Failed);
        Assert.Contains(result.Failures!, f => f.Contains("ControlPlane:Kubernetes:EnginePortAnnotation", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.Contains("ControlPlane:Kubernetes:DefaultEnginePort must be a port number (1-65535), not 0", StringComparison.Ordinal));
    }
}
