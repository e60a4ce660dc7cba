using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using HybridServing.KubeApiTestServer.Http;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Time.Testing;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

/// <summary>What kubectl reads besides objects: Tables, discovery from an applied CRD, OpenAPI v3.</summary>
public sealed class KubectlSurfaceTests
{
    private const string TableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    private static readonly string WidgetCrd = """
        {"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.example.com"},
         "spec":{"group":"example.com","scope":"Namespaced",
           "names":{"plural":"widgets","singular":"widget","kind":"Widget","listKind":"WidgetList","shortNames":["wd"],"categories":["all"]},
           "versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},
             "additionalPrinterColumns":[
               {"name":"Size","type":"integer","jsonPath":".spec.size"},
               {"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"},
               {"name":"Note","type":"string","jsonPath":".spec.note","priority":1},
               {"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}]}]}}
        """;

    [Theory]
    [InlineData(0, "0s")]
    [InlineData(119, "119s")]
    [InlineData(200, "3m20s")]
    [InlineData(300, "5m")]
    [InlineData(3000, "50m")]
    [InlineData(4 * 3600 + 120, "4h2m")]
    [InlineData(20 * 3600, "20h")]
    [InlineData(3 * 86400 + 5 * 3600, "3d5h")]
    [InlineData(30 * 86400, "30d")]
    [InlineData(3 * 365 * 86400 + 10 * 86400, "3y10d")]
    [InlineData(-5, "<invalid>")]
    public void Ages_are_formatted_as_kubectl_shows_them(int seconds, string expected) =>
        Assert.Equal(expected, TableRenderer.HumanDuration(TimeSpan.FromSeconds(seconds)));

    [Fact]
    public async Task Lists_and_gets_come_back_as_a_Table_with_name_and_age_when_asked()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { TimeProvider = clock });
        using var client = server.CreateClient();
        await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);
        clock.Advance(TimeSpan.FromSeconds(200));
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        http.DefaultRequestHeaders.Accept.ParseAdd(TableAccept);

        var list = JsonNode.Parse(await http.GetStringAsync("/api/v1/namespaces/default/configmaps"))!;
        var one = JsonNode.Parse(await http.GetStringAsync("/api/v1/namespaces/default/configmaps/a?includeObject=Object"))!;
        var plain = JsonNode.Parse(await server.CreateClient().HttpClient.GetStringAsync(server.Url + "/api/v1/namespaces/default/configmaps"))!;

        Assert.Equal("Table", (string?)list["kind"]);
        Assert.Equal(["Name", "Age"], list["columnDefinitions"]!.AsArray().Select(c => (string?)c!["name"]));
        Assert.Equal("[\"a\",\"3m20s\"]", list["rows"]![0]!["cells"]!.ToJsonString());
        Assert.Equal("PartialObjectMetadata", (string?)list["rows"]![0]!["object"]!["kind"]);
        Assert.Equal("ConfigMap", (string?)one["rows"]![0]!["object"]!["kind"]);
        Assert.Equal("ConfigMapList", (string?)plain["kind"]);
        var bad = await http.GetAsync("/api/v1/namespaces/default/configmaps?includeObject=All");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
    }

    [Fact]
    public async Task An_applied_crd_is_established_and_serves_its_resource_with_short_names_categories_and_printer_columns()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };

        var created = await http.PostAsync("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", new StringContent(WidgetCrd, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var crd = server.Get<V1CustomResourceDefinition>(null, "widgets.example.com")!;
        Assert.Equal(["NamesAccepted", "Established"], crd.Status.Conditions.Select(c => c.Type));
        Assert.All(crd.Status.Conditions, c => Assert.Equal("True", c.Status));
        Assert.Equal(["v1"], crd.Status.StoredVersions);

        var discovery = JsonNode.Parse(await http.GetStringAsync("/apis/example.com/v1"))!;
        var widgets = discovery["resources"]!.AsArray().Single(r => (string?)r!["name"] == "widgets")!;
        Assert.Equal("[\"wd\"]", widgets["shortNames"]!.ToJsonString());
        Assert.Equal("[\"all\"]", widgets["categories"]!.ToJsonString());
        Assert.Contains("example.com", await http.GetStringAsync("/apis"));

        var widget = """{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":3,"note":"n"}}""";
        Assert.Equal(HttpStatusCode.Created, (await http.PostAsync("/apis/example.com/v1/namespaces/default/widgets", new StringContent(widget, Encoding.UTF8, "application/json"))).StatusCode);
        await http.PatchAsync("/apis/example.com/v1/namespaces/default/widgets/w/status",
            new StringContent("""{"status":{"conditions":[{"type":"Other","status":"False"},{"type":"Ready","status":"True"}]}}""", Encoding.UTF8, "application/merge-patch+json"));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/apis/example.com/v1/namespaces/default/widgets");
        request.Headers.Accept.ParseAdd(TableAccept);
        var table = JsonNode.Parse(await (await http.SendAsync(request)).Content.ReadAsStringAsync())!;
        Assert.Equal(["Name", "Size", "Ready", "Note", "Age"], table["columnDefinitions"]!.AsArray().Select(c => (string?)c!["name"]));
        Assert.Equal(1, (int)table["columnDefinitions"]![3]!["priority"]!);
        Assert.Equal("[\"w\",3,\"True\",\"n\",\"0s\"]", table["rows"]![0]!["cells"]!.ToJsonString());
    }

    [Fact]
    public async Task A_crd_without_names_is_422_and_serves_nothing()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        var broken = WidgetCrd.Replace("\"plural\":\"widgets\",", "", StringComparison.Ordinal);

        var answer = await http.PostAsync("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", new StringContent(broken, Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, answer.StatusCode);
        Assert.Contains("spec.names.plural", await answer.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/apis/example.com/v1")).StatusCode);
    }

    [Fact]
    public async Task OpenApi_v3_lists_a_document_per_group_version_whose_patch_operations_take_dryRun_and_fieldValidation()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };

        var index = JsonNode.Parse(await http.GetStringAsync("/openapi/v3"))!;
        var apps = (string)index["paths"]!["apis/apps/v1"]!["serverRelativeURL"]!;
        var document = JsonNode.Parse(await http.GetStringAsync(apps))!;
        var patch = document["paths"]!["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]!["patch"]!;

        Assert.Contains("api/v1", index["paths"]!.AsObject().Select(p => p.Key));
        Assert.Contains("apis/hybridserving.io/v1alpha1", index["paths"]!.AsObject().Select(p => p.Key));
        Assert.Equal("""{"group":"apps","version":"v1","kind":"Deployment"}""", patch["x-kubernetes-group-version-kind"]!.ToJsonString());
        Assert.Equal(["dryRun", "fieldValidation", "fieldManager"], patch["parameters"]!.AsArray().Select(p => (string?)p!["name"]));
        Assert.NotNull(document["paths"]!["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/openapi/v3/apis/nothing/v1")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/openapi/v2")).StatusCode);
        Assert.Equal("32", (string?)JsonNode.Parse(await http.GetStringAsync("/version"))!["minor"]);
    }
}
