namespace HybridServing.ClusterSimulator.Experiments;

/// <summary>One evaluated rate of a knee search.</summary>
internal sealed record KneeProbe(double Rate, bool Meets);

/// <summary>The knee: the highest rate that met the SLO, with the bracket and every probe.</summary>
internal sealed record KneeResult(double Knee, double FirstFailing, IReadOnlyList<KneeProbe> Probes)
{
    public bool Bounded => double.IsFinite(FirstFailing);
}

/// <summary>
/// Finds the highest arrival rate at which a policy meets the SLO: grow geometrically from a start
/// rate until a failure (or shrink until a success), then bisect until the bracket is narrower than
/// the tolerance. Assumes "meets the SLO" is monotone in the rate (the traces share random numbers
/// across rates, which makes that hold far more often than with independent traces).
/// </summary>
internal static class KneeSearch
{
    public static KneeResult Find(Func<double, bool> meets, double start, double minRate, double maxRate, double tolerance)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(start);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(minRate);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRate, minRate);
        var probes = new List<KneeProbe>();
        bool Probe(double r)
        {
            var ok = meets(r);
            probes.Add(new KneeProbe(r, ok));
            return ok;
        }

        double good, bad;
        var rate = Math.Clamp(start, minRate, maxRate);
        if (Probe(rate))
        {
            good = rate;
            bad = double.PositiveInfinity;
            while (good < maxRate)
            {
                var next = Math.Min(maxRate, good * 2);
                if (Probe(next)) good = next;
                else { bad = next; break; }
            }
            if (!double.IsFinite(bad)) return new KneeResult(good, bad, probes);
        }
        else
        {
            bad = rate;
            good = 0;
            while (bad > minRate)
            {
                var next = Math.Max(minRate, bad / 2);
                if (Probe(next)) { good = next; break; }
                bad = next;
            }
            if (good == 0) return new KneeResult(0, bad, probes);
        }
        while ((bad - good) / good > tolerance)
        {
            var mid = Math.Sqrt(good * bad);
            if (Probe(mid)) good = mid; else bad = mid;
        }
        return new KneeResult(good, bad, probes);
    }
}
