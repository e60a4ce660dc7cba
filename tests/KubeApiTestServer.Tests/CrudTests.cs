using System.Net;
using k8s;
using k8s.Models;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

public sealed class CrudTests
{
    [Fact]
    public async Task Create_sets_server_metadata_and_get_returns_the_object()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();

        var created = await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);
        var second = await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("b"), Ns);

        Assert.True(Guid.TryParse(created.Metadata.Uid, out _));
        Assert.NotNull(created.Metadata.CreationTimestamp);
        Assert.True(Rv(second) > Rv(created), "resourceVersion increases across objects");
        Assert.Null(created.Metadata.Generation);
        var read = await client.CoreV1.ReadNamespacedConfigMapAsync("a", Ns);
        Assert.Equal(created.Metadata.Uid, read.Metadata.Uid);
        Assert.Equal("v", read.Data["k"]);
        Assert.Equal(Ns, read.Metadata.NamespaceProperty);
    }

    [Fact]
    public async Task A_Secrets_stringData_is_folded_into_data_on_create_and_update_and_never_returned()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var secret = new V1Secret
        {
            Metadata = new V1ObjectMeta { Name = "s", NamespaceProperty = Ns },
            Data = new Dictionary<string, byte[]> { ["kept"] = "old"u8.ToArray(), ["both"] = "from-data"u8.ToArray() },
            StringData = new Dictionary<string, string> { ["both"] = "from-stringData", ["plain"] = "p" },
        };

        var created = await client.CoreV1.CreateNamespacedSecretAsync(secret, Ns);
        Assert.Null(created.StringData);
        Assert.Equal(["both", "kept", "plain"], created.Data.Keys.Order());
        Assert.Equal("from-stringData", System.Text.Encoding.UTF8.GetString(created.Data["both"]));

        created.StringData = new Dictionary<string, string> { ["plain"] = "q" };
        var updated = await client.CoreV1.ReplaceNamespacedSecretAsync(created, "s", Ns);
        var read = await client.CoreV1.ReadNamespacedSecretAsync("s", Ns);
        Assert.Null(read.StringData);
        Assert.Equal("q", System.Text.Encoding.UTF8.GetString(read.Data["plain"]));
        Assert.Equal(updated.Metadata.ResourceVersion, read.Metadata.ResourceVersion);
    }

    [Fact]
    public async Task Get_of_a_missing_object_is_404_with_a_NotFound_Status()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();

        var e = await ExpectStatus(HttpStatusCode.NotFound, () => client.CoreV1.ReadNamespacedConfigMapAsync("nope", Ns));
        var status = Status(e);
        Assert.Equal("Status", status.Kind);
        Assert.Equal("Failure", status.Status);
        Assert.Equal("NotFound", status.Reason);
        Assert.Equal(404, status.Code);
        Assert.Equal("configmaps \"nope\" not found", status.Message);
    }

    [Fact]
    public async Task Creating_an_existing_name_is_409_AlreadyExists()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);

        var e = await ExpectStatus(HttpStatusCode.Conflict, () => client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns));
        Assert.Equal("AlreadyExists", Status(e).Reason);
    }

    [Fact]
    public async Task GenerateName_gets_a_random_suffix()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var body = new V1ConfigMap { Metadata = new V1ObjectMeta { GenerateName = "adapter-" } };

        var a = await client.CoreV1.CreateNamespacedConfigMapAsync(body, Ns);
        var b = await client.CoreV1.CreateNamespacedConfigMapAsync(body, Ns);

        Assert.Matches("^adapter-[a-z0-9]{5}$", a.Metadata.Name);
        Assert.NotEqual(a.Metadata.Name, b.Metadata.Name);
    }

    [Fact]
    public async Task Invalid_names_and_missing_names_are_422_Invalid()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();

        var bad = await ExpectStatus(HttpStatusCode.UnprocessableEntity, () => client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("Bad_Name"), Ns));
        Assert.Equal("Invalid", Status(bad).Reason);
        Assert.Contains("metadata.name", Status(bad).Message);
        var none = await ExpectStatus(HttpStatusCode.UnprocessableEntity, () => client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta() }, Ns));
        Assert.Contains("name or generateName is required", Status(none).Message);
    }

    [Fact]
    public async Task A_body_namespace_that_differs_from_the_path_is_400()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var cm = ConfigMap("a");
        cm.Metadata.NamespaceProperty = "other";

        var e = await ExpectStatus(HttpStatusCode.BadRequest, () => client.CoreV1.CreateNamespacedConfigMapAsync(cm, Ns));
        Assert.Equal("BadRequest", Status(e).Reason);
    }

    [Fact]
    public async Task Update_with_a_stale_resourceVersion_is_409_Conflict_and_changes_nothing()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var first = await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);
        var stale = await client.CoreV1.ReadNamespacedConfigMapAsync("a", Ns);

        first.Data["k"] = "writer-1";
        var updated = await client.CoreV1.ReplaceNamespacedConfigMapAsync(first, "a", Ns);
        stale.Data["k"] = "writer-2";
        var e = await ExpectStatus(HttpStatusCode.Conflict, () => client.CoreV1.ReplaceNamespacedConfigMapAsync(stale, "a", Ns));

        Assert.Equal("Conflict", Status(e).Reason);
        Assert.Contains("the object has been modified", Status(e).Message);
        Assert.True(Rv(updated) > Rv(first));
        Assert.Equal("writer-1", (await client.CoreV1.ReadNamespacedConfigMapAsync("a", Ns)).Data["k"]);
    }

    [Fact]
    public async Task Update_without_a_resourceVersion_is_unconditional()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);
        await client.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch("{\"data\":{\"k\":\"meanwhile\"}}", V1Patch.PatchType.MergePatch), "a", Ns);

        var blind = ConfigMap("a", data: new Dictionary<string, string> { ["k"] = "blind" });
        var result = await client.CoreV1.ReplaceNamespacedConfigMapAsync(blind, "a", Ns);

        Assert.Equal("blind", result.Data["k"]);
    }

    [Fact]
    public async Task An_update_that_changes_nothing_keeps_the_resourceVersion()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var created = await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);

        var same = await client.CoreV1.ReplaceNamespacedConfigMapAsync(created, "a", Ns);

        Assert.Equal(created.Metadata.ResourceVersion, same.Metadata.ResourceVersion);
        Assert.Equal(Rv(created), server.ResourceVersion);
    }

    [Fact]
    public async Task Update_of_a_missing_object_is_404_and_a_renamed_body_is_400()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await ExpectStatus(HttpStatusCode.NotFound, () => client.CoreV1.ReplaceNamespacedConfigMapAsync(ConfigMap("a"), "a", Ns));
        await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);

        var e = await ExpectStatus(HttpStatusCode.BadRequest, () => client.CoreV1.ReplaceNamespacedConfigMapAsync(ConfigMap("b"), "a", Ns));
        Assert.Contains("does not match the name on the URL", Status(e).Message);
    }

    [Fact]
    public async Task Delete_returns_a_success_Status_for_configmaps_and_the_object_for_pods()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);
        await client.CoreV1.CreateNamespacedPodAsync(Pod("p"), Ns);

        var status = await client.CoreV1.DeleteNamespacedConfigMapAsync("a", Ns);
        var pod = await client.CoreV1.DeleteNamespacedPodAsync("p", Ns);

        Assert.Equal("Success", status.Status);
        Assert.Equal("a", status.Details.Name);
        Assert.Equal("p", pod.Metadata.Name);
        await ExpectStatus(HttpStatusCode.NotFound, () => client.CoreV1.ReadNamespacedPodAsync("p", Ns));
        await ExpectStatus(HttpStatusCode.NotFound, () => client.CoreV1.DeleteNamespacedPodAsync("p", Ns));
    }

    [Fact]
    public async Task Delete_with_a_stale_resourceVersion_precondition_is_409()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var created = await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);
        await client.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch("{\"data\":{\"k\":\"2\"}}", V1Patch.PatchType.MergePatch), "a", Ns);

        var options = new V1DeleteOptions { Preconditions = new V1Preconditions { ResourceVersion = created.Metadata.ResourceVersion } };
        var e = await ExpectStatus(HttpStatusCode.Conflict, () => client.CoreV1.DeleteNamespacedConfigMapAsync("a", Ns, options));

        Assert.Contains("Precondition failed", Status(e).Message);
        Assert.NotNull(server.Get<V1ConfigMap>(Ns, "a"));
    }

    [Fact]
    public async Task Unknown_resources_are_404_with_a_Status_and_core_resources_of_all_kinds_are_served()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();

        var e = await ExpectStatus(HttpStatusCode.NotFound, () => client.CustomObjects.ListNamespacedCustomObjectAsync("example.com", "v1", Ns, "widgets"));
        Assert.Equal("the server could not find the requested resource", Status(e).Message);

        await client.CoreV1.CreateNamespacedSecretAsync(new V1Secret { Metadata = new V1ObjectMeta { Name = "creds" }, StringData = new Dictionary<string, string> { ["token"] = "x" } }, Ns);
        await client.CoreV1.CreateNamespacedServiceAsync(new V1Service { Metadata = new V1ObjectMeta { Name = "svc" }, Spec = new V1ServiceSpec { Ports = [new V1ServicePort { Port = 80 }] } }, Ns);
        await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = "team-a" } });
        await client.CoreV1.CreateNamespacedEventAsync(new Corev1Event { Metadata = new V1ObjectMeta { Name = "evt" }, InvolvedObject = new V1ObjectReference { Name = "a" }, Reason = "Loaded" }, Ns);
        await client.EventsV1.CreateNamespacedEventAsync(new Eventsv1Event { Metadata = new V1ObjectMeta { Name = "evt" }, EventTime = DateTime.UtcNow, Reason = "Loaded", Action = "Load", ReportingController = "hs", ReportingInstance = "hs-0" }, Ns);
        await client.DiscoveryV1.CreateNamespacedEndpointSliceAsync(new V1EndpointSlice { Metadata = new V1ObjectMeta { Name = "slice" }, AddressType = "IPv4", Endpoints = [new V1Endpoint { Addresses = ["10.0.0.1"] }] }, Ns);

        Assert.Equal(["default", "team-a"], (await client.CoreV1.ListNamespaceAsync()).Items.Select(n => n.Metadata.Name));
        Assert.Single((await client.CoreV1.ListNamespacedSecretAsync(Ns)).Items);
        Assert.Single((await client.CoreV1.ListServiceForAllNamespacesAsync()).Items);
        Assert.Single((await client.EventsV1.ListNamespacedEventAsync(Ns)).Items);
        Assert.Equal("10.0.0.1", (await client.DiscoveryV1.ReadNamespacedEndpointSliceAsync("slice", Ns)).Endpoints[0].Addresses[0]);
    }

    [Fact]
    public async Task Namespaces_can_be_required()
    {
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { RequireNamespaces = true });
        using var client = server.CreateClient();

        var inTeam = new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "a" } };
        var e = await ExpectStatus(HttpStatusCode.NotFound, () => client.CoreV1.CreateNamespacedConfigMapAsync(inTeam, "team-a"));
        Assert.Equal("namespaces \"team-a\" not found", Status(e).Message);
        await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = "team-a" } });
        await client.CoreV1.CreateNamespacedConfigMapAsync(inTeam, "team-a");

        // Like every cluster, the server starts with the default namespace.
        await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);
        Assert.Equal("Active", (await client.CoreV1.ReadNamespaceAsync(Ns)).Status.Phase);
    }

    [Fact]
    public async Task Seeded_objects_keep_their_status_and_are_readable_through_the_client()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var pod = Pod("engine-0", node: "node-a");
        pod.Status = new V1PodStatus { Phase = "Running", PodIP = "10.1.0.7" };

        var seeded = server.Seed(pod);
        var read = await client.CoreV1.ReadNamespacedPodAsync("engine-0", Ns);

        Assert.Equal("10.1.0.7", read.Status.PodIP);
        Assert.Equal(seeded.Metadata.Uid, read.Metadata.Uid);
        Assert.Equal(seeded.Metadata.ResourceVersion, read.Metadata.ResourceVersion);
        Assert.Single(server.List<V1Pod>(Ns));
        Assert.Throws<ArgumentException>(() => server.Seed(new V1Pod { Metadata = new V1ObjectMeta { Name = "no-namespace" } }));
        Assert.Throws<ArgumentException>(() => server.Seed(new V1Pod { Metadata = new V1ObjectMeta { Name = "Bad_Name", NamespaceProperty = Ns } }));
    }

    [Fact]
    public async Task Creating_a_namespaced_object_on_the_all_namespaces_path_is_refused()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };

        using var response = await http.PostAsync("/api/v1/configmaps", new StringContent("{\"metadata\":{\"name\":\"a\"}}", System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("a namespace is required", await response.Content.ReadAsStringAsync());
        Assert.Empty(server.List<V1ConfigMap>());
    }
}
