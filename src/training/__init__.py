"""Learn: featurisers, PSPP forward models, inverse screening and model cards."""
