using System.Net;
using HybridServing.Contracts.Resources;
using k8s;
using k8s.Models;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

public sealed class StatusAndLoraAdapterTests
{
    private const string Group = LoraAdapter.Group;
    private const string Version = LoraAdapter.Version;
    private const string Plural = LoraAdapter.Plural;

    private static LoraAdapter Adapter(string name, string baseModel = "meta-llama/Llama-3.1-8B-Instruct") => new()
    {
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = Ns },
        Spec = new LoraAdapterSpec
        {
            BaseModel = baseModel,
            AdapterSource = new AdapterSource { Type = AdapterSourceTypes.Local, Repository = "/adapters/sql" },
        },
    };

    private static GenericClient Adapters(Kubernetes client) => new(client, Group, Version, Plural, disposeClient: false);

    [Fact]
    public async Task LoraAdapter_round_trip_create_status_update_and_watch()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        using var adapters = Adapters(client);

        var created = await adapters.CreateNamespacedAsync(Adapter("sql"), Ns);
        Assert.Equal(1, created.Metadata.Generation);
        Assert.Null(created.Status);

        await using var watch = new WatchCollector<LoraAdapter>((onError, ct) =>
            AdapterWatch.Open(client, created.Metadata.ResourceVersion, onError, ct));
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));

        created.Status = new LoraAdapterStatus
        {
            Phase = LoraAdapterPhases.Ready,
            ObservedGeneration = created.Metadata.Generation,
            LoadedAdapters = ["sql-lora"],
            Conditions = [new V1Condition { Type = "Ready", Status = "True", Reason = "Loaded", Message = "1 of 1 loaded", LastTransitionTime = DateTime.UtcNow, ObservedGeneration = 1 }],
        };
        var written = await client.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync<LoraAdapter>(created, Group, Version, Ns, Plural, "sql");

        Assert.Equal(LoraAdapterPhases.Ready, written.Status!.Phase);
        Assert.Equal(1, written.Metadata.Generation);
        var seen = await watch.NextAsync();
        Assert.Equal(WatchEventType.Modified, seen!.Value.Type);
        Assert.Equal(["sql-lora"], seen.Value.Object.Status!.LoadedAdapters!);
        Assert.Equal("Ready", seen.Value.Object.Status.Conditions![0].Type);
        Assert.Equal(LoraAdapterPhases.Ready, (await adapters.ReadNamespacedAsync<LoraAdapter>(Ns, "sql")).Status!.Phase);
        Assert.Equal(LoraAdapterPhases.Ready, server.Get<LoraAdapter>(Ns, "sql")!.Status!.Phase);
    }

    [Fact]
    public async Task Create_ignores_status_for_resources_with_a_status_subresource()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        using var adapters = Adapters(client);
        var adapter = Adapter("sql");
        adapter.Status = new LoraAdapterStatus { Phase = LoraAdapterPhases.Ready };

        var created = await adapters.CreateNamespacedAsync(adapter, Ns);

        Assert.Null(created.Status);
    }

    [Fact]
    public async Task Spec_changes_bump_generation_and_metadata_only_changes_do_not()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        using var adapters = Adapters(client);
        var created = await adapters.CreateNamespacedAsync(Adapter("sql"), Ns);

        created.Metadata.Labels = new Dictionary<string, string> { ["team"] = "search" };
        var relabelled = await adapters.ReplaceNamespacedAsync(created, Ns, "sql");
        relabelled.Spec.BaseModel = "other-model";
        var respecced = await adapters.ReplaceNamespacedAsync(relabelled, Ns, "sql");
        var patched = await adapters.PatchNamespacedAsync<LoraAdapter>(
            new V1Patch("{\"metadata\":{\"annotations\":{\"a\":\"b\"}}}", V1Patch.PatchType.MergePatch), Ns, "sql");

        Assert.Equal(1, relabelled.Metadata.Generation);
        Assert.True(Rv(relabelled) > Rv(created));
        Assert.Equal(2, respecced.Metadata.Generation);
        Assert.Equal(2, patched.Metadata.Generation);
    }

    [Fact]
    public async Task Status_writes_change_only_status_and_never_generation()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        using var adapters = Adapters(client);
        var created = await adapters.CreateNamespacedAsync(Adapter("sql"), Ns);

        created.Spec.BaseModel = "sneaky-change";
        created.Metadata.Labels = new Dictionary<string, string> { ["sneaky"] = "yes" };
        created.Status = new LoraAdapterStatus { Phase = LoraAdapterPhases.Loading };
        var written = await client.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync<LoraAdapter>(created, Group, Version, Ns, Plural, "sql");
        var patched = await client.CustomObjects.PatchNamespacedCustomObjectStatusAsync<LoraAdapter>(
            new V1Patch("{\"spec\":{\"baseModel\":\"also-sneaky\"},\"status\":{\"phase\":\"Ready\",\"observedGeneration\":1}}", V1Patch.PatchType.MergePatch),
            Group, Version, Ns, Plural, "sql");

        Assert.Equal(LoraAdapterPhases.Loading, written.Status!.Phase);
        Assert.Equal("meta-llama/Llama-3.1-8B-Instruct", written.Spec.BaseModel);
        Assert.Null(written.Metadata.Labels);
        Assert.Equal(LoraAdapterPhases.Ready, patched.Status!.Phase);
        Assert.Equal("meta-llama/Llama-3.1-8B-Instruct", patched.Spec.BaseModel);
        Assert.Equal(1, patched.Metadata.Generation);
    }

    [Fact]
    public async Task Main_resource_writes_ignore_status()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        using var adapters = Adapters(client);
        var created = await adapters.CreateNamespacedAsync(Adapter("sql"), Ns);
        var withStatus = await client.CustomObjects.PatchNamespacedCustomObjectStatusAsync<LoraAdapter>(
            new V1Patch("{\"status\":{\"phase\":\"Ready\"}}", V1Patch.PatchType.MergePatch), Group, Version, Ns, Plural, "sql");

        withStatus.Status!.Phase = LoraAdapterPhases.Failed;
        var replaced = await adapters.ReplaceNamespacedAsync(withStatus, Ns, "sql");
        var patched = await adapters.PatchNamespacedAsync<LoraAdapter>(new V1Patch("{\"status\":{\"phase\":\"Failed\"}}", V1Patch.PatchType.MergePatch), Ns, "sql");

        Assert.Equal(LoraAdapterPhases.Ready, replaced.Status!.Phase);
        Assert.Equal(LoraAdapterPhases.Ready, patched.Status!.Phase);
        Assert.Equal(withStatus.Metadata.ResourceVersion, patched.Metadata.ResourceVersion);
        Assert.Equal(created.Metadata.Uid, patched.Metadata.Uid);
    }

    [Fact]
    public async Task Status_update_with_a_stale_resourceVersion_is_409()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        using var adapters = Adapters(client);
        var created = await adapters.CreateNamespacedAsync(Adapter("sql"), Ns);
        await adapters.PatchNamespacedAsync<LoraAdapter>(new V1Patch("{\"spec\":{\"baseModel\":\"m2\"}}", V1Patch.PatchType.MergePatch), Ns, "sql");

        created.Status = new LoraAdapterStatus { Phase = LoraAdapterPhases.Ready, ObservedGeneration = 1 };
        var e = await ExpectStatus(HttpStatusCode.Conflict,
            () => client.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync<LoraAdapter>(created, Group, Version, Ns, Plural, "sql"));

        Assert.Equal("Operation cannot be fulfilled on loraadapters.hybridserving.io \"sql\": the object has been modified; please apply your changes to the latest version and try again", Status(e).Message);
    }

    [Fact]
    public async Task Pod_status_subresource_sets_the_podIP_that_spec_writes_cannot()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await client.CoreV1.CreateNamespacedPodAsync(Pod("engine-0"), Ns);

        var running = await client.CoreV1.PatchNamespacedPodStatusAsync(
            new V1Patch("{\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.9\"}}", V1Patch.PatchType.MergePatch), "engine-0", Ns);
        var labelled = await client.CoreV1.PatchNamespacedPodAsync(
            new V1Patch("{\"metadata\":{\"labels\":{\"role\":\"engine\"}},\"status\":{\"podIP\":\"1.2.3.4\"}}", V1Patch.PatchType.StrategicMergePatch), "engine-0", Ns);

        Assert.Equal("10.0.0.9", running.Status.PodIP);
        Assert.Equal("10.0.0.9", labelled.Status.PodIP);
        Assert.Equal("engine", labelled.Metadata.Labels["role"]);
    }
}
