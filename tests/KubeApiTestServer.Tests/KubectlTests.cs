using System.Text.RegularExpressions;
using HybridServing.Contracts.Resources;
using k8s;
using k8s.Models;

namespace HybridServing.KubeApiTestServer.Tests;

/// <summary>The real kubectl (from PATH, client 1.32) against the test server, with its default settings (validation on).</summary>
public sealed partial class KubectlTests : IAsyncLifetime, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kubectl-tests-").FullName;
    private KubeApiServer _server = null!;
    private Kubectl _kubectl = null!;

    public async Task InitializeAsync()
    {
        _server = await KubeApiServer.StartAsync(new KubeApiServerOptions { RequireNamespaces = true });
        _kubectl = new Kubectl(_server) { WorkingDirectory = RepositoryRoot() };
    }

    public async Task DisposeAsync()
    {
        _kubectl.Dispose();
        await _server.DisposeAsync();
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Apply_k8s_creates_every_manifest_object_and_the_applied_crd_serves_lora_with_its_printer_columns()
    {
        var rendered = await _kubectl.RunAsync("kustomize", "k8s/");
        var applied = await _kubectl.RunAsync("apply", "-k", "k8s/", "--validate=strict", "-o", "name");

        var names = applied.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(TopLevelKind().Matches(rendered).Count, names.Length);
        foreach (var name in names)
        {
            var ns = Regex.Match(rendered, $"name: {Regex.Escape(name.Split('/')[1])}\\n  namespace: (\\S+)") is { Success: true } m ? m.Groups[1].Value : "default";
            Assert.Contains(name, await _kubectl.RunAsync("get", name, "-n", ns, "-o", "name"));
        }

        await _kubectl.RunAsync("wait", "--for=condition=Established", "--timeout=10s", "crd/" + LoraAdapter.Plural + "." + LoraAdapter.Group);
        await File.WriteAllTextAsync(Path.Combine(_dir, "lora.yaml"), """
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: sql
              namespace: default
            spec:
              baseModel: test/tiny
              adapterSource:
                type: local
                repository: /adapters
            """);
        await _kubectl.RunAsync("apply", "-f", Path.Combine(_dir, "lora.yaml"));
        using var client = _server.CreateClient();
        await client.CustomObjects.PatchNamespacedCustomObjectStatusAsync(new V1Patch(
            """{"status":{"phase":"Ready","conditions":[{"type":"Ready","status":"True","reason":"AllLoaded","message":"1 loaded","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}""",
            V1Patch.PatchType.MergePatch), LoraAdapter.Group, LoraAdapter.Version, "default", LoraAdapter.Plural, "sql");

        var table = await _kubectl.RunAsync("get", "lora");
        var wide = await _kubectl.RunAsync("get", LoraAdapter.ShortName, "-o", "wide");

        Assert.Matches(@"^NAME\s+BASE MODEL\s+SOURCE\s+PHASE\s+READY\s+AGE\n", table);
        Assert.Matches(@"\nsql\s+test/tiny\s+local\s+Ready\s+True\s+\d+s\n", table);
        Assert.Matches(@"^NAME\s+BASE MODEL\s+SOURCE\s+PHASE\s+READY\s+REASON\s+AGE\n", wide);
        Assert.Matches(@"\nsql\s+test/tiny\s+local\s+Ready\s+True\s+AllLoaded\s+\d+s\n", wide);
        Assert.Contains("loraadapter.hybridserving.io/sql", await _kubectl.RunAsync("get", "hybridserving", "-o", "name"));
    }

    [Fact]
    public async Task Reapplying_a_changed_deployment_keeps_every_container_field_and_dry_run_diff_and_scale_behave()
    {
        var v1 = Path.Combine(_dir, "v1.yaml");
        var v2 = Path.Combine(_dir, "v2.yaml");
        await File.WriteAllTextAsync(v1, Web("web", "app:1", """
                    - name: A
                      value: "1"
                    - name: B
                      value: "2"
            """));
        await File.WriteAllTextAsync(v2, Web("web", "app:2", """
                    - name: C
                      value: "3"
                    - name: A
                      value: "10"
            """));
        await _kubectl.RunAsync("apply", "-f", v1);
        await _kubectl.RunAsync("apply", "-f", v2);
        // The same manifest created fresh under another name: what the re-applied object must equal.
        await File.WriteAllTextAsync(Path.Combine(_dir, "fresh.yaml"), (await File.ReadAllTextAsync(v2)).Replace("name: web\n", "name: fresh\n", StringComparison.Ordinal));
        await _kubectl.RunAsync("apply", "-f", Path.Combine(_dir, "fresh.yaml"));

        var reapplied = _server.Get<V1Deployment>("default", "web")!;
        var fresh = _server.Get<V1Deployment>("default", "fresh")!;
        Assert.Equal(KubernetesJson.Serialize(fresh.Spec.Template.Spec), KubernetesJson.Serialize(reapplied.Spec.Template.Spec));
        Assert.Equal(["C=3", "A=10"], reapplied.Spec.Template.Spec.Containers[0].Env.Select(e => e.Name + "=" + e.Value));
        Assert.Equal("/health", reapplied.Spec.Template.Spec.Containers[0].ReadinessProbe.HttpGet.Path);
        Assert.DoesNotContain("$", KubernetesJson.Serialize(reapplied));

        // kubectl set image: a strategic merge patch naming one container.
        await _kubectl.RunAsync("set", "image", "deployment/web", "app=app:3");
        var imaged = _server.Get<V1Deployment>("default", "web")!;
        Assert.Equal(["app:3", "sidecar:1"], imaged.Spec.Template.Spec.Containers.Select(c => c.Image));
        Assert.Equal(KubernetesJson.Serialize(reapplied.Spec.Template.Spec.Containers[0].Env), KubernetesJson.Serialize(imaged.Spec.Template.Spec.Containers[0].Env));

        // --dry-run=server and diff report the change and leave the object as it was.
        var before = _server.ResourceVersion;
        var dryRun = await _kubectl.RunAsync("apply", "-f", v1, "--dry-run=server");
        var diff = await _kubectl.TryRunAsync("diff", "-f", v1);
        Assert.Contains("configured (server dry run)", dryRun);
        Assert.Equal(1, diff.ExitCode);
        Assert.Contains("+        image: app:1", diff.Output);
        Assert.Contains("-        image: app:3", diff.Output);
        Assert.Equal(before, _server.ResourceVersion);
        Assert.Equal(KubernetesJson.Serialize(imaged), KubernetesJson.Serialize(_server.Get<V1Deployment>("default", "web")));

        // kubectl scale goes through the scale subresource.
        Assert.Contains("deployment.apps/web scaled", await _kubectl.RunAsync("scale", "deployment/web", "--replicas=4"));
        Assert.Equal(4, _server.Get<V1Deployment>("default", "web")!.Spec.Replicas);
        Assert.Contains(_server.Requests, r => r.Subresource == "scale" && r.Verb == "patch" && r.StatusCode == 200);
        Assert.Equal("4", await _kubectl.RunAsync("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"));
        var stale = await _kubectl.TryRunAsync("scale", "deployment/web", "--replicas=5", "--current-replicas=2");
        Assert.NotEqual(0, stale.ExitCode);
        Assert.Equal(4, _server.Get<V1Deployment>("default", "web")!.Spec.Replicas);
    }

    [Fact]
    public async Task Imperative_creates_sent_as_protobuf_fail_with_a_message_naming_the_content_type_and_store_nothing()
    {
        var result = await _kubectl.TryRunAsync("create", "namespace", "team-a");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("application/vnd.kubernetes.protobuf", result.Error);
        Assert.Null(_server.Get<V1Namespace>(null, "team-a"));
    }

    private static string Web(string name, string image, string env) => $$"""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{name}}
          namespace: default
        spec:
          replicas: 1
          selector:
            matchLabels:
              app: web
          template:
            metadata:
              labels:
                app: web
            spec:
              containers:
              - name: app
                image: {{image}}
                args: ["--port", "8000"]
                env:
        {{env}}
                ports:
                - containerPort: 8000
                  name: http
                readinessProbe:
                  httpGet:
                    path: /health
                    port: 8000
                resources:
                  limits:
                    memory: 512Mi
                volumeMounts:
                - mountPath: /data
                  name: data
              - name: sidecar
                image: sidecar:1
              volumes:
              - name: data
                emptyDir: {}

        """;

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "HybridServing.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("HybridServing.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex("^kind: ", RegexOptions.Multiline)]
    private static partial Regex TopLevelKind();
}
