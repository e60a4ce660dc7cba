using Aspire.Hosting.Pipelines;
using HybridServing.Contracts.Resources;
using HybridServing.Hosting.Kubernetes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Aspire.Hosting;

/// <summary>
/// Publishing the app model as Kubernetes manifests: a step of Aspire's publish pipeline (in place of
/// Aspire.Hosting.Kubernetes, which is not available to us) that walks the model's HybridServing
/// resources and writes Deployments, Services, RBAC, the namespace and the kustomization.
/// </summary>
public static class KubernetesPublishing
{
    public const string StepName = "hybridserving-kubernetes";

    public static IDistributedApplicationBuilder AddHybridServingKubernetesManifests(this IDistributedApplicationBuilder builder, KubernetesPublishOptions options)
    {
        builder.Pipeline.AddStep(StepName, async context =>
        {
            var output = context.Services.GetRequiredService<IPipelineOutputService>().GetOutputDirectory();
            Directory.CreateDirectory(output);
            foreach (var (file, yaml) in KubernetesManifests.Build(context.Model, options))
            {
                var path = Path.Combine(output, file);
                await File.WriteAllTextAsync(path, yaml, context.CancellationToken);
                context.Logger.LogInformation("wrote {Path}", path);
            }
            // The kustomization names the LoraAdapter CRD: the output is self-contained.
            var crds = Directory.CreateDirectory(Path.Combine(output, "crds")).FullName;
            var crd = Path.Combine(crds, CrdGenerator.FileName);
            await File.WriteAllTextAsync(crd, CrdGenerator.GenerateYaml(), context.CancellationToken);
            context.Logger.LogInformation("wrote {Path}", crd);
        }, requiredBy: WellKnownPipelineSteps.Publish);
        return builder;
    }
}
